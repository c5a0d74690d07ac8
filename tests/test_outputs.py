"""Learner outputs: capped in bytes and inert."""
import nbformat
import pytest

from course_grading import outputs

@pytest.mark.fast
def test_only_inert_output_types_are_kept():
    html = nbformat.v4.new_output("display_data", data={"text/html": "<script>x()</script>", "text/plain": "<HTML>"})
    js = nbformat.v4.new_output("display_data", data={"application/javascript": "x()"})
    png = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "image/svg+xml": "<svg onload=x()>"},
                                 metadata={"image/png": {"width": "1\" onerror=\"x()"}})
    bad_png = nbformat.v4.new_output("display_data", data={"image/png": "\"><script>x()</script>"})
    stream = nbformat.v4.new_output("stream", name="stdout", text="<b>not markup</b>")
    assert outputs.neutralize_output(html)["data"] == {"text/plain": "<HTML>"}
    assert outputs.neutralize_output(js)["data"] == {"text/plain": "[output of type application/javascript not shown]"}
    kept = outputs.neutralize_output(png)
    assert kept["data"] == {"image/png": "iVBORw0KGgo="} and kept["metadata"] == {}
    assert "image/png" not in outputs.neutralize_output(bad_png)["data"]
    assert outputs.neutralize_output(stream) == stream  # shown as escaped text


@pytest.mark.fast
def test_outputs_are_capped_with_a_note():
    many = [nbformat.v4.new_output("stream", name="stdout", text="x" * 400) for _ in range(10)]
    kept = outputs.cap_outputs(many, 1000)
    assert len(kept) == 3 and "3200 more bytes were left out" in kept[-1]["text"]


@pytest.mark.fast
def test_the_notebook_widget_state_is_dropped():
    notebook = nbformat.v4.new_notebook(metadata={"widgets": {"state": "<script>"}})
    notebook.cells.append(nbformat.v4.new_code_cell("x", outputs=[]))
    notebook, _ = outputs.NeutralizeOutputs().preprocess(notebook, {})
    assert "widgets" not in notebook.metadata


def test_a_kernel_that_prints_without_end_is_capped_as_it_prints(tmp_path):
    # A real kernel printing 8 MiB; only the cap is kept (and held in memory).
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell("for _ in range(8):\n    print('x' * 2**20)"))
    notebook.cells.append(nbformat.v4.new_code_cell("print('after')"))
    execute = outputs.CappedExecute(cell_limit=100_000, notebook_limit=150_000, timeout=120)
    notebook, _ = execute.preprocess(notebook, {"metadata": {"path": str(tmp_path)}})
    first = notebook.cells[0].outputs
    assert sum(len(o.get("text", "")) for o in first) < 110_000 and "more bytes were left out" in first[-1]["text"]
    assert notebook.cells[1].outputs[0]["text"] == "after\n"
    # The control: a plain client keeps all of it.
    from nbclient import NotebookClient

    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("for _ in range(8):\n    print('x' * 2**20)")])
    NotebookClient(plain, timeout=120).execute()
    assert sum(len(o.get("text", "")) for o in plain.cells[0].outputs) >= 8 * 2**20


@pytest.mark.fast
def test_learners_markdown_keeps_its_text_and_loses_its_scripts():
    learner = nbformat.v4.new_markdown_cell("Since $a<b$, **so**. <script>steal()</script><img src=x onerror=steal()>")
    instructor = nbformat.v4.new_markdown_cell("<b>Exercise</b>",
                                               metadata={"nbgrader": {"locked": True, "grade_id": "intro"}})
    notebook = outputs.sanitize_markdown_cells(nbformat.v4.new_notebook(cells=[learner, instructor]))
    text = notebook.cells[0].source
    assert "<script>" not in text and "<img" not in text and "steal()" in text and "**so**" in text
    assert notebook.cells[1].source == "<b>Exercise</b>"
