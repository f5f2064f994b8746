"""Every management command of the registry's own apps has a test file that runs it."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_command_has_a_test():
    commands = [
        p.stem
        for app in ("models_app", "deployments_app", "registry_site")
        for p in (ROOT / app / "management" / "commands").glob("*.py")
        if p.stem != "__init__"
    ]
    assert commands, "no management commands found"
    missing = [c for c in commands if not (ROOT / "tests" / f"test_command_{c}.py").exists()]
    assert missing == [], f"commands without tests/test_command_<name>.py: {missing}"
    for command in commands:
        assert f'"{command}"' in (ROOT / "tests" / f"test_command_{command}.py").read_text()
