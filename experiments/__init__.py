"""medim's bundled experiments, installed as the package `medim.experiments` (see pyproject.toml).

Only the YAML files here matter; this file makes the folder a regular package so that
`importlib.resources.files("medim.experiments")` finds it in an editable install and in a wheel.
"""
