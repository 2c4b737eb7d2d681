"""The sidebar's page links, named for the people who use them and shown only to roles that may open them
(Streamlit's own list, which names the first page "dashboard", is switched off in .streamlit/config.toml)."""
from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitAPIException

# (file, label, icon, roles that may open it)
PAGES = (
    ("dashboard.py", "Live class", ":material/videocam:", ("teacher", "developer")),
    ("pages/2_Sessions.py", "Sessions", ":material/bar_chart:", ("teacher", "analyst", "developer")),
    ("pages/3_Training.py", "Training", ":material/model_training:", ("developer",)),
)


def sidebar_nav(role: str) -> None:
    with st.sidebar:
        for page, label, icon, roles in PAGES:
            if role in roles:
                try:
                    st.page_link(page, label=label, icon=icon)
                except StreamlitAPIException:  # a page run on its own (AppTest) has no other pages to link to
                    return
