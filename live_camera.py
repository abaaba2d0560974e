"""The Predict page's live camera: the run's model answering in the student's own browser.

A Streamlit component (assets/web/live.html) runs the export of catdog.web on ONNX Runtime Web,
fed by the browser's camera. The server writes a run's model once per saved version and serves
it as a file the browser caches; answering frames costs the server nothing, so a class of thirty
live cameras weighs on it no more than one.
"""

import streamlit as st
import streamlit.components.v1 as components

from catdog import web
from catdog.runs import Run

HEIGHT = 620
_component = components.declare_component("catdog_live", path=str(web.live_folder()))


def live_camera(run: Run) -> None:
    """The camera view with the run's live answer; the model is written first if need be."""
    with st.spinner("Preparing the model for your browser, once for this model…"):
        try:
            model = web.live_model(run)
        except web.ExportError as error:
            st.caption(f"The live camera is not available for this model: {error}")
            return
    _component(model=model, key=f"live-{run.id}", default=None, height=HEIGHT)
