"""synthmix: synthetic instruction data for LLM pretraining mixes.

The one name synthmix installs. Its subpackages are the repository's top-level folders:
`synthmix.pipeline` is pipeline/, and likewise stages/, quality/ and prompts/. In a checkout
they are reached through the links synthmix/<folder> -> ../<folder>, so Python, setuptools
(the wheel and editable installs), import-linter and Ray's py_modules upload all see one tree
laid out as the wheel lays it out; the wheel holds the files themselves under synthmix/.

Each folder's __init__.py refuses to be imported by its bare folder name (`import pipeline`
from the repository root would otherwise load every module a second time, as a different
module: two stage registries, isinstance checks that fail).
"""
