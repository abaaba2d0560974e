"""What the tests and the benchmarks share: tiny data sets, waiting with a deadline, the Streamlit protocol, Chromium."""
