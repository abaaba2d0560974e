"""A page reduced to what the dashboard's pages have in common under a class's load: a fragment in
the sidebar that reruns on a timer (the run-status badge's, ten times as often) beside a page of elements. It
imports catdog_ui, as every page does, with the fixes it makes to Streamlit's runtime."""

import time

import streamlit as st

import catdog_ui  # noqa: F401

LAST_LINE = "the end of the page"


def work(seconds: float) -> None:
    """A page's own work between its elements: reading its files, drawing."""
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        pass


@st.fragment(run_every=0.5)
def status() -> None:
    work(0.005)
    st.caption("status")


with st.sidebar:
    status()
for line in range(40):
    work(0.002)
    st.write(f"line {line}")
st.write(LAST_LINE)
