"""Sphinx configuration for imagepipe's documentation."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '_ext'))

project = 'imagepipe'
author = 'imagepipe developers'
extensions = ['sphinx.ext.graphviz', 'oslo_config.sphinxext',
              'imagepipe_docs']
graphviz_output_format = 'svg'
master_doc = 'index'
exclude_patterns = []
# quotes and ellipses, but '--' stays '--': option names in generated text
smartquotes_action = 'qe'
html_theme = 'alabaster'
html_static_path = ['_static']
