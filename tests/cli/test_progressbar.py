"""The terminal progress bar draws on a terminal and stays silent in pipes and logs."""
import io

from studio.commands.progressbar import ProgressBar


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_draws_on_a_terminal_and_cleans_up():
    stream = FakeTty()
    with ProgressBar(stream) as bar:
        bar(0.0, "starting")
        bar(1.0, "done")
    text = stream.getvalue()
    assert "[" + "-" * 28 + "]   0% starting" in text and "[" + "#" * 28 + "] 100% done" in text
    assert text.endswith("\r")


def test_silent_when_not_a_terminal():
    stream = io.StringIO()
    with ProgressBar(stream) as bar:
        bar(0.5, "half")
    assert stream.getvalue() == ""
