import numpy as np
import pandas as pd
import pytest

from iatros.errors import ConfigError, UnknownTaskError
from iatros.kinds import Modality, TargetKind
from iatros.tasks import Task, TaskData, get_task, list_tasks, register_family, register_task


def _toy_loader(_root):
    return TaskData(inputs=np.zeros((4, 2), np.float32), targets=np.array([0, 1, 0, 1]),
                    patient_ids=np.array(["a", "b", "c", "d"]),
                    attributes=pd.DataFrame({"sex": ["f", "m", "f", "m"]}))


def test_builtin_tasks_are_listed():
    names = {t.name for t in list_tasks()}
    assert {"breast-cancer-wdbc", "whas500-mortality-1y"} <= names


def test_unknown_task_suggests_close_names():
    with pytest.raises(UnknownTaskError, match="breast-cancer-wdbc"):
        get_task("breast-cancer-wdcb")


def test_user_tasks_can_be_registered_and_found():
    task = register_task(Task(name="toy-user-task", description="toy", modality=Modality.TABULAR,
                              target=TargetKind.BINARY, loader=_toy_loader,
                              sensitive_attributes=("sex",)), replace=True)
    assert get_task("toy-user-task") is task
    assert task.load(".").attributes["sex"].tolist() == ["f", "m", "f", "m"]


def test_registering_a_taken_name_is_refused():
    first = get_task("breast-cancer-wdbc")
    clone = Task(**{**first.__dict__, "description": "other"})
    with pytest.raises(ConfigError, match="already registered"):
        register_task(clone)


def test_task_families_build_tasks_from_an_argument():
    def factory(argument, options):
        return Task(name=f"toyfam:{argument}", description=argument, modality=Modality.TABULAR,
                    target=TargetKind.BINARY, loader=_toy_loader)

    register_family("toyfam", factory)
    assert get_task("toyfam:abc").description == "abc"


def test_plugins_named_in_environment_are_imported(monkeypatch, tmp_path):
    import iatros.tasks.registry as registry

    (tmp_path / "my_hospital_tasks.py").write_text(
        "from iatros.tasks import Task, register_task\n"
        "from iatros.kinds import Modality, TargetKind\n"
        "register_task(Task(name='plugin-task', description='p', modality=Modality.TABULAR,"
        " target=TargetKind.BINARY, loader=lambda root: None), replace=True)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("IATROS_PLUGINS", "my_hospital_tasks")
    monkeypatch.setattr(registry, "_loaded", False)
    assert get_task("plugin-task").description == "p"


def test_missing_plugin_is_a_clear_error(monkeypatch):
    import iatros.tasks.registry as registry

    monkeypatch.setenv("IATROS_PLUGINS", "no_such_module_xyz")
    monkeypatch.setattr(registry, "_loaded", False)
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        list_tasks()
