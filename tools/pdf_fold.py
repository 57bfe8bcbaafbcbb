"""A Sphinx extension for the single-page build of `make pdf` (tools/pdf.py): folded outputs, unfolded.

myst-nb wraps the output of a cell tagged `hide-output` (the answer to a "predict, then run" question) in a fold
that the website's reader opens with a click, and registers that node for the html builder only, so the
singlehtml builder cannot write it. On paper nothing can be unfolded: here the node writes its content as it is.
"""


def _visit(translator, node):
    pass


def _depart(translator, node):
    pass


def setup(app):
    from myst_nb.sphinx_ import HideCodeCellNode

    app.add_node(HideCodeCellNode, override=True, singlehtml=(_visit, _depart))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
