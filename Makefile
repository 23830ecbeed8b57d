# Shortcuts; scripts/ holds the real commands.
.PHONY: run test rules bench memory golden prometheusrule

run: ## run the exporter (AWS credentials, or the seeded emulator)
	scripts/run.sh

test: ## install what the tests need and run every check
	scripts/test.sh

rules: ## check the alert rules and run their unit tests
	promtool check rules alerts/iam-credentials.rules.yml
	promtool test rules alerts/tests/*.yml

bench: ## criterion benchmarks for a 5,000-user account
	cargo bench --bench report_and_metrics

memory: ## memory and exposition size of the release binary, 5,000 users
	benches/memory.sh

golden: ## rewrite tests/golden/scrape.prom after an intended change
	IAM_EXPORTER_TEST_PYTHON=$(CURDIR)/.venv/bin/python UPDATE_GOLDEN=1 cargo test --test exporter_core scrape_passes_promtool

prometheusrule: ## regenerate the Kubernetes PrometheusRule from the rule file
	.venv/bin/python deploy/kubernetes/generate_prometheusrule.py
