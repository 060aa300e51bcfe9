# Two commands for a newcomer: `make run` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

# Embedded-mode demo secrets for `make run` and `make simulate`, used only when the
# environment does not set them (never for tests, which bring their own).
DEMO_PROVIDER_PORT ?= 8001
ifndef WHATSAPP_API_URL
START_DEMO_PROVIDER := 1
endif
run simulate: export WHATSAPP_APP_SECRET ?= dev-app-secret
run simulate: export WHATSAPP_VERIFY_TOKEN ?= dev-verify-token
run simulate: export TWILIO_AUTH_TOKEN ?= dev-twilio-token
run simulate: export TWILIO_ACCOUNT_SID ?= AC00000000000000000000000000000000
run simulate: export TWILIO_WHATSAPP_NUMBER ?= whatsapp:+14155238886
run simulate: export WHATSAPP_PHONE_NUMBER_ID ?= 112233445566778
run simulate: export WHATSAPP_ACCESS_TOKEN ?= dev-access-token
run simulate: export TRUSTED_PROXY_COUNT ?= 0
# Replies go to a loopback stand-in for Meta and Twilio unless real API URLs are given.
run: export WHATSAPP_API_URL ?= http://127.0.0.1:$(DEMO_PROVIDER_PORT)/v21.0
run: export TWILIO_API_URL ?= http://127.0.0.1:$(DEMO_PROVIDER_PORT)

.PHONY: run simulate test install lint lock

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## run: web (gunicorn) + worker (huey_consumer, with the outbox relay) on the embedded default; Ctrl-C stops both
run: $(STAMP)
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/flask --app wsgi demo init
	@echo "dashboard: http://127.0.0.1:$(PORT)/dashboard"
	@echo "Meta webhook:   http://127.0.0.1:$(PORT)/api/v1/whatsapp-hardened/webhook"
	@echo "Twilio webhook: http://127.0.0.1:$(PORT)/api/v1/whatsapp-hardened/twilio/webhook"
	@echo "demo traffic:   make simulate   (in a second terminal)"
	@trap 'kill $$web $$worker $$provider 2>/dev/null; wait; echo stopped' INT TERM; \
	if [ -n "$(START_DEMO_PROVIDER)" ]; then \
	  echo "replies go to a loopback stand-in for Meta/Twilio on port $(DEMO_PROVIDER_PORT)"; \
	  $(BIN)/flask --app wsgi demo provider --port $(DEMO_PROVIDER_PORT) & provider=$$!; \
	fi; \
	$(BIN)/huey_consumer wsgi.huey -w 2 -k thread & worker=$$!; \
	$(BIN)/gunicorn wsgi:app -b 127.0.0.1:$(PORT) -w 2 & web=$$!; \
	wait $$web; kill $$worker $$provider 2>/dev/null; wait

## simulate: signed demo traffic to the instance `make run` started (same demo secrets)
simulate: $(STAMP)
	$(BIN)/flask --app wsgi webhooks simulate --url http://127.0.0.1:$(PORT) --count $(or $(COUNT),60)

## test: the whole suite (SQLite unit tests; PostgreSQL + Redis integration tests on loopback)
test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

## lock: recompile requirements.txt and requirements-dev.txt (every package pinned) from the .in files
lock: $(STAMP)
	$(BIN)/pip install -q pip-tools==7.6.2
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --strip-extras -o requirements.txt requirements.in
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --strip-extras -o requirements-dev.txt requirements-dev.in
