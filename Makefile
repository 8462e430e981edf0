# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install system-deps demo lint test test-quick screenshots installer constraints clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

system-deps:
	@sh installer/system-deps.sh

demo: install
	$(VENV)/bin/studio demo

# Fast checks first: style (ruff), types of the core (mypy), the layering contracts (import-linter).
lint: install
	$(VENV)/bin/ruff check studio tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint system-deps
	$(PY) -m pytest -q --durations=25

# The quick tier (under 2 minutes): everything but the tests that train, convert or deploy models.
test-quick: lint system-deps
	$(PY) -m pytest -q -m "not slow"

screenshots: install system-deps
	QT_QPA_PLATFORM=offscreen STUDIO_THEME=light $(PY) -m studio.gui.screenshots screenshots --theme light
	QT_QPA_PLATFORM=offscreen STUDIO_THEME=dark $(PY) -m studio.gui.screenshots screenshots --theme dark

# The desktop installer (dist/studio-desktop/ and its .tar.gz) and the standalone flasher (dist/studio-flash/).
installer: install
	rm -rf dist/studio-desktop dist/studio-flash
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation -w dist/studio-desktop .
	cp installer/install-desktop.sh installer/constraints.txt dist/studio-desktop/
	tar -C dist -czf dist/studio-desktop.tar.gz studio-desktop
	$(VENV)/bin/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
		installer/studio-flash.spec
	@du -sh dist/studio-flash dist/studio-desktop.tar.gz

# Pin the desktop install to the stack this .venv was tested with.
constraints: install
	@{ echo "# The stack checked together on this machine (pip freeze of the tested .venv); the desktop installer installs"; \
	   echo "# under these constraints so every install gets the same versions. Refresh: make constraints"; \
	   $(VENV)/bin/pip freeze --exclude-editable; } > installer/constraints.txt

clean:
	rm -rf $(VENV) build dist screenshots .pytest_cache
