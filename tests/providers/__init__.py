"""Tests of the voice providers: CXML, pacing, the Cloudonix adapter."""
