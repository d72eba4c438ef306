"""The update engine, a layer below the commands: one 3-way merge of rendered templates into a fleet repo.

- `engine.run_update`: components to a newer template version (`fleetstrap update`, `update --pr`).
- `engine.apply_answers_change`: a component re-rendered with changed answers at its own version (`fleetstrap add`).
- `merge.py`: renders at both sides and the per-file merge; `protect.py`: bot-owned lines and the one conflict
  detector; `source.py`: where template versions come from; `migrations.py`: changes a merge cannot express.
"""
