"""The package's metadata against facts about WVS Wave 7 and the benchmark release."""

from wvb_spark.core import metadata


def test_counts_match_the_release():
    assert len(metadata.questions()) == 282
    assert len(metadata.value_question_ids()) == 239
    assert len(metadata.demographic_variables()) == 43
    assert len(metadata.codebook_variables()) == 375
    assert len(metadata.probe_questions()) == 36


def test_value_questions_have_integer_scales():
    for qid in metadata.value_question_ids():
        q = metadata.questions()[qid]
        assert q.scale_min is not None and q.scale_max > q.scale_min, qid


def test_project_mappings_cover_every_codebook_country_and_isced_level():
    countries = set(metadata.choices("B_COUNTRY").values())
    assert countries <= set(metadata.country_continents())
    assert set(metadata.country_continents().values()) == set(metadata.CONTINENTS)
    isced = {label for code, label in metadata.choices("Q275").items() if int(code) >= 0}
    assert len(isced) == 9
    assert isced <= set(metadata.education_levels())


def test_published_mappings_keep_their_known_gaps():
    countries = set(metadata.choices("B_COUNTRY").values())
    assert countries - set(metadata.country_continents(published=True)) == {"Bosnia Herzegovina", "North Macedonia"}
    isced = {label for code, label in metadata.choices("Q275").items() if int(code) >= 0}
    assert isced - set(metadata.education_levels(published=True)) == {"Master or equivalent (ISCED 7)"}


def test_adjustments_map_to_scale_or_missing():
    adj = metadata.answer_adjustments()
    assert adj["Q56"] == {2: 3, 3: 2}
    assert adj["Q111"] == {3: None}
    for qid, mapping in adj.items():
        q = metadata.questions()[qid]
        for new in mapping.values():
            assert new is None or q.scale_min <= new <= q.scale_max
