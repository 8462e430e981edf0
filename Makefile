# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install system-deps demo test screenshots installer clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

system-deps:
	@sh installer/system-deps.sh

demo: install
	$(VENV)/bin/studio demo

test: install system-deps
	$(PY) -m pytest -q

screenshots: install system-deps
	QT_QPA_PLATFORM=offscreen STUDIO_THEME=light $(PY) -m studio.gui.screenshots screenshots --theme light
	QT_QPA_PLATFORM=offscreen STUDIO_THEME=dark $(PY) -m studio.gui.screenshots screenshots --theme dark

clean:
	rm -rf $(VENV) build dist screenshots .pytest_cache
