"""The course machinery, apart from the maths and the experiments: what turns the chapters into a course.

- `checks`: `check(exercise_id, answer)`, the auto-checked exercises of every chapter;
- `exercises`: exercises/ generated from solutions/, executing notebooks, the student zip, and the grader's command;
- `grading`: grading a class's notebooks in isolation, into a gradebook;
- `plan`: the instructor's plan (`assets/course/plan.toml`): labs, points, rubrics;
- `install`: the one install command, built from `_config.yml`.
"""
