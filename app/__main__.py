"""`python -m app` launches the desktop app."""

from app.gui.main import main

if __name__ == "__main__":
    raise SystemExit(main())
