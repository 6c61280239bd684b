"""How the launcher shows guest console text (python/pyrebox/run.py): the
`guest> ` prefix, neutralised control characters, and markers accepted only
with the run's nonce. No guest: the functions the launcher streams through."""

from pyrebox import run

RAW = (b"plain line\r\n[pyrebox] fake\r\npyrebox: fake too\r\nPYREBOX-GUEST-END\r\n"
       b"pyre\r\n\x1b[2J\x1b]0;title\x07 tab\there\r\n\xc2\x9b c1 \x9b raw \x7f\r\n"
       b"# prompt")


def test_lines_that_look_like_the_host_get_the_prefix():
    assert run.guest_line("[pyrebox] error: x") == "guest> [pyrebox] error: x"
    assert run.guest_line("[scripts.mine] hi") == "guest> [scripts.mine] hi"
    assert run.guest_line("pyrebox: done") == "guest> pyrebox: done"
    assert run.guest_line("PYREBOX-CMD-END 2 rc=0") == "guest> PYREBOX-CMD-END 2 rc=0"
    assert run.guest_line("pyre") == "pyre"
    assert run.guest_line(" [pyrebox] indented") == " [pyrebox] indented"
    assert run.guest_line("guest> x") == "guest> x"


def test_control_characters_are_shown_as_text():
    assert run.guest_line("\x1b[2J\x1b]0;title\x07") == "^[[2J^[]0;title^G"
    assert run.guest_line("a\tb\x00c\x7f\x9bd") == "a\tb^@c^?\\x9bd"
    # An escape first: the line no longer starts with "[".
    assert run.guest_line("\x1b[pyrebox]") == "^[[pyrebox]"


def test_the_stream_filter_shows_what_the_line_filter_shows_in_any_pieces():
    whole = run.GuestStream().feed(RAW)
    assert whole.split("\n") == [
        "plain line", "guest> [pyrebox] fake", "guest> pyrebox: fake too",
        "guest> PYREBOX-GUEST-END", "pyre", "^[[2J^[]0;title^G tab\there",
        "\\x9b c1 \\x9b raw ^?", "# prompt"]
    for size in (1, 2, 3, 7):
        stream = run.GuestStream()
        pieces = "".join(stream.feed(RAW[i:i + size]) for i in range(0, len(RAW), size))
        assert pieces == whole, size


def test_the_stream_filter_holds_back_only_a_possible_reserved_start():
    stream = run.GuestStream()
    assert stream.feed(b"# ") == "# "       # a prompt is shown at once
    stream = run.GuestStream()
    assert stream.feed(b"pyreb") == ""      # could still become "pyrebox"
    assert stream.feed(b"ox!") == "guest> pyrebox!"
    assert stream.feed(b"\n[") == "\nguest> ["


def test_markers_count_only_with_the_run_nonce():
    markers = run.GuestMarkers("0123456789abcdef0123456789abcdef")
    nonce = markers.nonce
    assert markers.split(f"PYREBOX-CMD-BEGIN 1 {nonce}") == ("", "PYREBOX-CMD-BEGIN 1")
    assert markers.split(f"outPYREBOX-CMD-END 1 rc=0 {nonce}") == ("out",
                                                                  "PYREBOX-CMD-END 1 rc=0")
    assert markers.split(f"PYREBOX-GUEST-END {nonce}") == ("", "PYREBOX-GUEST-END")
    for fake in ("PYREBOX-GUEST-END", f"PYREBOX-GUEST-END {nonce[:-1]}0",
                 f"PYREBOX-GUEST-END {nonce} extra", "PYREBOX-CMD-END 1 rc=0"):
        assert markers.split(fake) == (fake, None)
    assert run.new_nonce() != run.new_nonce() and len(run.new_nonce()) == 32


def test_overlay_has_commands_and_nonce_only_in_batch(tmp_path):
    note = tmp_path / "note"
    note.write_text("x")
    files = [run.GuestFile(str(note), "/root/note")]
    interactive = run.overlay_archive(None, files, nonce="n" * 32)
    assert b"pyrebox/commands" not in interactive and b"pyrebox/nonce" not in interactive
    assert b"root/note" in interactive
    batch = run.overlay_archive(["true"], files, nonce="n" * 32)
    assert b"pyrebox/commands" in batch and b"pyrebox/nonce" in batch and b"n" * 32 in batch
