"""The Discord adapter: discord.py wiring (app.py, delivery.py, shapes.py, process.py) around
pure conversion (convert.py) and rendering (render.py). Never run a file from inside this
package: its name shadows discord.py."""
