"""``shred-ir ui``: restore images in the browser (a gradio page over the Python API).

:mod:`.session` turns the page's inputs into library calls (no gradio), :mod:`.app` builds the
page, :mod:`.command` is the sub-command (``add_parser(sub)``, ``run(args)``). gradio is an optional
dependency (``pip install 'shred[ui]'``), imported only when the page is built.
"""
