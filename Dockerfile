# Class Mood on a server: the Streamlit app with its model and Python packages. See docs/deploy.md.
#   docker compose up -d --build      (compose.yaml: the app, HTTPS, a TURN server, optional PostgreSQL)
FROM python:3.11-slim

# The OpenCV (headless), PyAV, TensorFlow and onnxruntime wheels bundle their libraries beyond what the slim
# image has (libstdc++, zlib). Chromium draws the charts of PNG downloads and PDF session reports (kaleido),
# DejaVu gives the reports' text more than Latin-1.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=3 OPENBLAS_NUM_THREADS=1
RUN apt-get update && apt-get install -y --no-install-recommends chromium fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# psycopg: the PostgreSQL driver, for CLASS_MOOD_DB=postgresql+psycopg://...
RUN pip install -r requirements.txt "psycopg[binary]>=3.2"
# The code (and weights/, the shipped model, when it is there at build time) stays owned by root: read-only to the app.
COPY . .

# The app runs as an unprivileged user and writes only to /data (a volume): the SQLite session
# database, registered models, training runs and uploaded datasets. Sign-in is required: without
# users (CLASS_MOOD_USERS or secrets.toml) every page says what is missing.
RUN useradd --create-home --uid 10001 classmood && mkdir /data && chown classmood /data
ENV CLASS_MOOD_DB=/data/sessions.sqlite CLASS_MOOD_MODELS=/data/models CLASS_MOOD_RUNS=/data/runs \
    CLASS_MOOD_DATASETS=/data/datasets CLASS_MOOD_REQUIRE_AUTH=1
VOLUME /data
USER classmood

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "dashboard.py", "--server.address", "0.0.0.0", "--server.port", "8501", "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
