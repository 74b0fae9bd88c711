from phi_lsp.settings import Settings, parse


def test_camel_case_keys_from_the_wire_fill_snake_case_fields() -> None:
    s, warnings = parse({"maxNewTokens": 32, "verify": "require", "model": "tiny"})
    assert (s.max_new_tokens, s.verify, s.model) == (32, "require", "tiny")
    assert warnings == []


def test_bad_value_warns_with_key_and_keeps_default() -> None:
    s, warnings = parse({"verify": "always", "candidates": 0, "temperature": "hot"})
    assert s.verify == Settings().verify
    assert s.candidates == Settings().candidates
    assert s.temperature == Settings().temperature
    assert len(warnings) == 3
    assert any("phiLsp.verify" in w for w in warnings)
    assert any("phiLsp.candidates" in w for w in warnings)


def test_unknown_key_is_reported_not_fatal() -> None:
    s, warnings = parse({"phiLsp": {"modle": "tiny", "device": "cpu"}})
    assert s.device == "cpu"
    assert warnings == ["phiLsp.modle: unknown setting, ignored"]


def test_non_object_settings_fall_back_to_defaults() -> None:
    s, warnings = parse(["nope"])  # type: ignore[arg-type]
    assert s == Settings()
    assert warnings and "must be an object" in warnings[0]


def test_merge_keeps_earlier_values() -> None:
    s1, _ = parse({"model": "tiny"})
    s2, _ = parse({"verify": "prefer"}, base=s1)
    assert (s2.model, s2.verify) == ("tiny", "prefer")
