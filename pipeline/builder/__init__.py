"""The build stage: a validated Project becomes one build context per endpoint (and images).

output.py writes the contexts and the manifest; render.py fills the templates; handlers.py checks
handlers and init hooks against the files that ship; ignore.py decides which files ship;
images.py builds and pushes images. Nothing here imports the target or report stages.
"""
