"""PveSession's record of the run: perform records a change and makes it only outside check mode."""

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.pve.session import PveSession


@pytest.mark.parametrize("check_mode", [False, True])
def test_perform_records_the_change_and_skips_the_call_in_check_mode(check_mode):
    calls = []
    session = PveSession({}, check_mode=check_mode, client=object())
    done = session.perform("started", lambda: calls.append("call") or "upid")
    assert session.actions == ["started"] and session.changed is True
    assert (done, calls) == ((None, []) if check_mode else ("upid", ["call"]))


def test_note_records_once_and_is_no_change():
    session = PveSession({}, client=object())
    session.note("waited for lock backup")
    session.note("waited for lock backup")
    assert session.actions == ["waited for lock backup"] and session.changed is False
