/// The database layout, versioned by `PRAGMA user_version`: step n takes a database from
/// version n to n+1, inside one transaction with the version bump, so an interrupted upgrade
/// leaves the old version intact. Append steps; never edit one that has shipped.
enum Schema {
    static let steps: [String] = [
        // 0 → 1
        """
        CREATE TABLE jobs (
            id            TEXT PRIMARY KEY NOT NULL,
            owner_uid     INTEGER NOT NULL,
            state         TEXT NOT NULL CHECK (state IN
                              ('validating', 'queued', 'in_progress', 'completed', 'failed', 'cancelled', 'expired')),
            created_at    REAL NOT NULL,
            started_at    REAL,
            finished_at   REAL,
            deadline      REAL,
            run_now       INTEGER NOT NULL CHECK (run_now IN (0, 1)),
            -- Per-state line counts, kept in step with lines in the same transactions, so that
            -- status and list never count a million lines.
            n_total       INTEGER NOT NULL,
            n_queued      INTEGER NOT NULL DEFAULT 0,
            n_in_progress INTEGER NOT NULL DEFAULT 0,
            n_done        INTEGER NOT NULL DEFAULT 0,
            n_failed      INTEGER NOT NULL DEFAULT 0,
            n_cancelled   INTEGER NOT NULL DEFAULT 0,
            n_expired     INTEGER NOT NULL DEFAULT 0,
            error         TEXT
        );
        CREATE INDEX jobs_by_state ON jobs (state, created_at);
        CREATE INDEX jobs_by_owner ON jobs (owner_uid, created_at);

        CREATE TABLE lines (
            job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            line_no     INTEGER NOT NULL,
            custom_id   TEXT NOT NULL,
            request     TEXT NOT NULL,
            state       TEXT NOT NULL CHECK (state IN
                            ('queued', 'in_progress', 'done', 'failed', 'cancelled', 'expired')),
            result      TEXT,
            error       TEXT,
            attempts    INTEGER NOT NULL DEFAULT 0,
            finished_at REAL,
            PRIMARY KEY (job_id, line_no),
            UNIQUE (job_id, custom_id)
        );
        -- Claiming reads a job's queued lines in order.
        CREATE INDEX lines_by_state ON lines (job_id, state, line_no);
        """,
        // 1 → 2
        """
        -- jobs.submit's idempotency_key: one job per owner and key.
        ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;
        CREATE UNIQUE INDEX jobs_by_key ON jobs (owner_uid, idempotency_key) WHERE idempotency_key IS NOT NULL;
        -- What the job's lines take in the store (custom ids and requests, in bytes), counted
        -- against max_job_bytes_per_user; measured here for the jobs stored before.
        ALTER TABLE jobs ADD COLUMN n_bytes INTEGER NOT NULL DEFAULT 0;
        UPDATE jobs SET n_bytes = (
            SELECT coalesce(sum(length(CAST(custom_id AS BLOB)) + length(CAST(request AS BLOB))), 0)
            FROM lines WHERE lines.job_id = jobs.id);
        """,
        // 2 → 3
        """
        -- How the job's lines are written (JobFormat), which is also how its results are read
        -- back; every job before this one was native.
        ALTER TABLE jobs ADD COLUMN format TEXT NOT NULL DEFAULT 'native' CHECK (format IN ('native', 'openai'));
        """,
    ]

    static var version: Int { steps.count }
}
