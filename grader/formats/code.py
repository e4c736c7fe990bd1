"""The formats a code part takes: a student's functions in a Python file or a Jupyter notebook. They are run by
the code worker (grader.evaluation.code), never inspected as a model."""

from __future__ import annotations

from grader.formats.base import ModelFormat


class CodeFormat(ModelFormat):
    code = True
    cells = False
    "Whether the file is a notebook, whose code cells the code worker reads (a .py file is read whole)."


class Python(CodeFormat):
    name = "python"
    suffixes = (".py",)
    described = "a Python file (.py)"
    short = "Python"
    how = "a .py file with your functions"


class Notebook(CodeFormat):
    name = "notebook"
    cells = True
    suffixes = (".ipynb",)
    described = "a Jupyter notebook (.ipynb)"
    short = "notebook"
    how = "a Jupyter notebook (.ipynb) with them"


PYTHON = Python()
NOTEBOOK = Notebook()
