"""The bundled demo: procedural captioned scenes (for the demo model and the example styles) and the pixel
statistics the demo benches and tests use to check colours and styles without a learned judge."""
