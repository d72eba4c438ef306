"""The forge layer, shared by the commands that reach a git remote or GitHub (`push`, `update --pr`,
`promote --pr`, `bootstrap`): tokens and the git environment (`auth.py`), the GitHub API (`github_api.py`),
journaled and recording clients (`clients.py`), one "publish a branch as a pull request" (`pullrequest.py`),
deploy and release keys (`keys.py`), rulesets (`rules.py`) and what workflows need (`workflows.py`).

The `push` command lives above it: `fleetstrap.push`."""
