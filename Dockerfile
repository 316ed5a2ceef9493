# giftcards against an external PostgreSQL: docker run -e DATABASE_URL=... -e GIFTCARDS_MASTER_KEY=... giftcards
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY giftcards ./giftcards
COPY schema ./schema
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# A CJK font so card pictures can draw Chinese messages and names.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin giftcards
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER giftcards
WORKDIR /app
ENV GIFTCARDS_HOME=/app PYTHONUNBUFFERED=1
EXPOSE 8000
# DATABASE_URL must be set: in a container the service never starts a database of its own.
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["giftcards", "serve", "--host", "0.0.0.0", "--port", "8000"]
