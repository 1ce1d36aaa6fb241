-- Volume Data Sync on Snowpark Container Services: setup, deploy, operate.
--
-- Run the sections in order (README "Deploy to SPCS" walks through them). Sections 1-3 need a role
-- that may create roles, warehouses and compute pools and grant account privileges (ACCOUNTADMIN,
-- or SECURITYADMIN + SYSADMIN); from section 4 on everything runs as SYNC_SERVICE_ROLE, the role
-- that owns the service and whose grants are all the service can do.
--
-- Names used here and in spcs/spec.yaml and spcs/sync.toml (change them together):
--   database.schema of the service  SYNC_DB.SYNC        image repository  IMAGES
--   service                         VOLUME_DATA_SYNC    compute pool      SYNC_POOL
--   warehouse                       SYNC_WH             block volume      "data" (mounted at /data)
--   owner role                      SYNC_SERVICE_ROLE   operators' role   SYNC_OPERATOR
--   source tables                   APP_DB.PUBLIC.PARTICIPANTS, COURSES, ENROLLMENTS, DAILY_METRICS
--   alert integrations              SYNC_ALERTS_EMAIL (and SYNC_ALERTS_WEBHOOK)   dashboard users' role  SYNC_VIEWER

------------------------------------------------------------------------------------------------
-- 1. Roles, database, warehouse, compute pool
------------------------------------------------------------------------------------------------
USE ROLE ACCOUNTADMIN;

CREATE ROLE IF NOT EXISTS SYNC_SERVICE_ROLE COMMENT = 'owns and runs the Volume Data Sync service';
CREATE ROLE IF NOT EXISTS SYNC_OPERATOR COMMENT = 'operators of Volume Data Sync (reach the admin app)';
GRANT ROLE SYNC_SERVICE_ROLE TO ROLE SYSADMIN;
GRANT ROLE SYNC_OPERATOR TO ROLE SYSADMIN;

CREATE DATABASE IF NOT EXISTS SYNC_DB;
CREATE SCHEMA IF NOT EXISTS SYNC_DB.SYNC;
GRANT USAGE ON DATABASE SYNC_DB TO ROLE SYNC_SERVICE_ROLE;
GRANT USAGE ON SCHEMA SYNC_DB.SYNC TO ROLE SYNC_SERVICE_ROLE;
GRANT CREATE SERVICE, CREATE IMAGE REPOSITORY, CREATE STAGE, CREATE SNAPSHOT ON SCHEMA SYNC_DB.SYNC TO ROLE SYNC_SERVICE_ROLE;

-- The warehouse the service queries with (SPCS injects none: sync.toml [source] warehouse and
-- CREATE SERVICE ... QUERY_WAREHOUSE below both name it).
CREATE WAREHOUSE IF NOT EXISTS SYNC_WH
  WAREHOUSE_SIZE = XSMALL AUTO_SUSPEND = 60 AUTO_RESUME = TRUE INITIALLY_SUSPENDED = TRUE;
GRANT USAGE ON WAREHOUSE SYNC_WH TO ROLE SYNC_SERVICE_ROLE;

-- One small CPU node: the service runs one instance (one writer, one block volume).
CREATE COMPUTE POOL IF NOT EXISTS SYNC_POOL
  MIN_NODES = 1 MAX_NODES = 1 INSTANCE_FAMILY = CPU_X64_S AUTO_RESUME = TRUE AUTO_SUSPEND_SECS = 3600;
GRANT USAGE, MONITOR ON COMPUTE POOL SYNC_POOL TO ROLE SYNC_SERVICE_ROLE;

-- A public endpoint needs this account privilege.
GRANT BIND SERVICE ENDPOINT ON ACCOUNT TO ROLE SYNC_SERVICE_ROLE;

------------------------------------------------------------------------------------------------
-- 2. Read access to the source tables (SELECT only; Time Travel reads need nothing more)
------------------------------------------------------------------------------------------------
GRANT USAGE ON DATABASE APP_DB TO ROLE SYNC_SERVICE_ROLE;
GRANT USAGE ON SCHEMA APP_DB.PUBLIC TO ROLE SYNC_SERVICE_ROLE;
GRANT SELECT ON TABLE APP_DB.PUBLIC.PARTICIPANTS TO ROLE SYNC_SERVICE_ROLE;
GRANT SELECT ON TABLE APP_DB.PUBLIC.COURSES TO ROLE SYNC_SERVICE_ROLE;
GRANT SELECT ON TABLE APP_DB.PUBLIC.ENROLLMENTS TO ROLE SYNC_SERVICE_ROLE;
GRANT SELECT ON TABLE APP_DB.PUBLIC.DAILY_METRICS TO ROLE SYNC_SERVICE_ROLE;

------------------------------------------------------------------------------------------------
-- 3. Who deploys and who operates (replace the user names)
------------------------------------------------------------------------------------------------
GRANT ROLE SYNC_SERVICE_ROLE TO USER DEPLOYER;     -- whoever pushes images and runs sections 4-7
GRANT ROLE SYNC_OPERATOR TO USER SYNC_ADMIN;       -- and list SYNC_ADMIN in sync.toml [admin] operators

------------------------------------------------------------------------------------------------
-- 4. Image repository and the stage holding spec.yaml
------------------------------------------------------------------------------------------------
USE ROLE SYNC_SERVICE_ROLE;
USE DATABASE SYNC_DB;
USE SCHEMA SYNC;
USE WAREHOUSE SYNC_WH;

CREATE IMAGE REPOSITORY IF NOT EXISTS IMAGES;
SHOW IMAGE REPOSITORIES IN SCHEMA SYNC_DB.SYNC;
-- repository_url is <org>-<account>.registry.snowflakecomputing.com/sync_db/sync/images. From the
-- repository root, on a machine with Docker:
--   docker build --platform linux/amd64 -f spcs/Dockerfile -t volume-data-sync:0.1.0 .
--   docker login <org>-<account>.registry.snowflakecomputing.com -u <user>   (or: snow spcs image-registry login)
--   docker tag volume-data-sync:0.1.0 <repository_url>/volume-data-sync:0.1.0
--   docker push <repository_url>/volume-data-sync:0.1.0
-- and the example app's image (the second container, spec.yaml "dashboard"):
--   docker build --platform linux/amd64 -f examples/dashboard/Dockerfile -t volume-data-sync-dashboard:0.1.0 .
--   docker tag volume-data-sync-dashboard:0.1.0 <repository_url>/volume-data-sync-dashboard:0.1.0
--   docker push <repository_url>/volume-data-sync-dashboard:0.1.0
SHOW IMAGES IN IMAGE REPOSITORY SYNC_DB.SYNC.IMAGES;

CREATE STAGE IF NOT EXISTS SPECS DIRECTORY = (ENABLE = TRUE) COMMENT = 'service specification';
-- Big tables with [[tables]] export = "engine" are unloaded here by COPY INTO (a prefix per run,
-- syncer/<run id>/<table>/), downloaded with GET and removed at once; prefixes a killed run left
-- behind are swept by the next run. SYNC_SERVICE_ROLE creates it, so it owns it (READ and WRITE).
-- Server-side encryption: GET of a client-side-encrypted internal stage needs the stage's key.
CREATE STAGE IF NOT EXISTS SYNCER_UNLOAD ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')
  COMMENT = 'Volume Data Sync: per-run unloads of big tables; emptied after every run';
-- From the repository root, with SnowSQL or the Snowflake CLI (PUT runs client-side):
--   PUT file://spcs/spec.yaml @SYNC_DB.SYNC.SPECS AUTO_COMPRESS = FALSE OVERWRITE = TRUE;

------------------------------------------------------------------------------------------------
-- 5. The service
------------------------------------------------------------------------------------------------
CREATE SERVICE IF NOT EXISTS VOLUME_DATA_SYNC
  IN COMPUTE POOL SYNC_POOL
  FROM @SPECS SPECIFICATION_FILE = 'spec.yaml'
  QUERY_WAREHOUSE = SYNC_WH
  MIN_INSTANCES = 1
  MAX_INSTANCES = 1
  COMMENT = 'Volume Data Sync: warehouse tables to validated snapshots on a block volume';

-- Wait for READY (the readiness probe GET /ready answers 200 once the startup sync has served data).
SHOW SERVICE CONTAINERS IN SERVICE VOLUME_DATA_SYNC;
SELECT SYSTEM$GET_SERVICE_LOGS('VOLUME_DATA_SYNC', 0, 'syncer', 100);

-- The admin app's address: ingress_url of the endpoint "app".
SHOW ENDPOINTS IN SERVICE VOLUME_DATA_SYNC;

-- Operators reach the endpoint through the service role (spec.yaml serviceRoles).
GRANT SERVICE ROLE VOLUME_DATA_SYNC!OPERATOR TO ROLE SYNC_OPERATOR;

------------------------------------------------------------------------------------------------
-- 6. Logs: one JSON object per line (time, level, run_id, table, step, message) in the event table
------------------------------------------------------------------------------------------------
SELECT timestamp,
       TRY_PARSE_JSON(value):level::STRING   AS level,
       TRY_PARSE_JSON(value):run_id::STRING  AS run_id,
       TRY_PARSE_JSON(value):table::STRING   AS table_name,
       TRY_PARSE_JSON(value):step::STRING    AS step,
       TRY_PARSE_JSON(value):message::STRING AS message
  FROM SNOWFLAKE.TELEMETRY.EVENTS            -- or the account's active event table (SHOW PARAMETERS LIKE 'EVENT_TABLE' IN ACCOUNT)
 WHERE resource_attributes:"snow.service.name" = 'VOLUME_DATA_SYNC'
   AND record_type = 'LOG'
 ORDER BY timestamp DESC
 LIMIT 200;

------------------------------------------------------------------------------------------------
-- 7. Runbook, one statement at a time when needed (commented out so that running this file never
--    suspends the service or overwrites its volume): snapshot, restore, upgrade of the block volume
------------------------------------------------------------------------------------------------
-- Take a snapshot of instance 0's volume (before an upgrade, or on a schedule), named for the day
-- (UTC) it is taken. No IF NOT EXISTS: with a fixed name it would silently keep the FIRST snapshot
-- on every later upgrade; a dated name that already exists is an error you see, not a no-op.
--   CREATE SNAPSHOT SYNC_DATA_SNAPSHOT_20261201 FROM SERVICE VOLUME_DATA_SYNC VOLUME "data" INSTANCE 0
--     COMMENT = 'Volume Data Sync snapshots, run history and current pointer';
--   DESCRIBE SNAPSHOT SYNC_DATA_SNAPSHOT_20261201;   -- usable once its state is CREATED
--
-- List the snapshots taken so far (newest first by created_on), and drop the ones no longer needed:
--   SHOW SNAPSHOTS LIKE 'SYNC_DATA_SNAPSHOT_%' IN SCHEMA SYNC_DB.SYNC;
--   DROP SNAPSHOT IF EXISTS SYNC_DATA_SNAPSHOT_20261101;
--
-- Restore it into the service's volume (suspended meanwhile; on resume the app repairs `current`
-- and serves the restored data at once):
--   ALTER SERVICE VOLUME_DATA_SYNC SUSPEND;
--   ALTER SERVICE VOLUME_DATA_SYNC RESTORE VOLUME "data" INSTANCES 0 FROM SNAPSHOT SYNC_DATA_SNAPSHOT_20261201;
--   ALTER SERVICE VOLUME_DATA_SYNC RESUME;
--
-- Or start a new service from the snapshot: in spec.yaml, under the volume "data", add
--   blockConfig:
--     initialContents:
--       fromSnapshot: SYNC_DB.SYNC.SYNC_DATA_SNAPSHOT_20261201
--
-- Upgrade to a new image: build and push it with a new tag, change `image:` in spec.yaml, PUT the
-- spec again, then (the block volume and its published data survive the upgrade):
--   ALTER SERVICE VOLUME_DATA_SYNC FROM @SYNC_DB.SYNC.SPECS SPECIFICATION_FILE = 'spec.yaml';

------------------------------------------------------------------------------------------------
-- 8. Alerts through Snowflake's notification integrations, and the dashboard's users
------------------------------------------------------------------------------------------------
-- The service sends alerts with CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(...) on its own session
-- (sync.toml [[alerts.snowflake]]): Snowflake delivers them, the container needs no outbound
-- network. Integrations are account objects: created as ACCOUNTADMIN, then USAGE for the service.
USE ROLE ACCOUNTADMIN;

-- E-mail: recipients must be verified e-mail addresses of users in this account. Replace the
-- placeholder address, and keep it in step with spcs/sync.toml [[alerts.snowflake]] recipients.
CREATE NOTIFICATION INTEGRATION IF NOT EXISTS SYNC_ALERTS_EMAIL
  TYPE = EMAIL
  ENABLED = TRUE
  ALLOWED_RECIPIENTS = ('ops@example.com')
  DEFAULT_SUBJECT = 'Volume Data Sync alert'
  COMMENT = 'Volume Data Sync: run failures, stale tables, quarantined rows, verify mismatches';
GRANT USAGE ON INTEGRATION SYNC_ALERTS_EMAIL TO ROLE SYNC_SERVICE_ROLE;

-- A webhook (Slack, Teams, PagerDuty): the secret part of its URL lives in a SECRET object, never
-- in a file. Uncomment, put the secret in, then add to sync.toml:
--   [[alerts.snowflake]]  integration = "SYNC_ALERTS_WEBHOOK"  type = "webhook"
--   CREATE SECRET IF NOT EXISTS SYNC_DB.SYNC.SYNC_ALERTS_WEBHOOK_SECRET
--     TYPE = GENERIC_STRING SECRET_STRING = 'T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX';
--   CREATE NOTIFICATION INTEGRATION IF NOT EXISTS SYNC_ALERTS_WEBHOOK
--     TYPE = WEBHOOK
--     ENABLED = TRUE
--     WEBHOOK_URL = 'https://hooks.slack.com/services/SNOWFLAKE_WEBHOOK_SECRET'
--     WEBHOOK_SECRET = SYNC_DB.SYNC.SYNC_ALERTS_WEBHOOK_SECRET
--     WEBHOOK_BODY_TEMPLATE = '{"text": "SNOWFLAKE_WEBHOOK_MESSAGE"}'
--     WEBHOOK_HEADERS = ('Content-Type' = 'application/json');
--   GRANT USAGE ON INTEGRATION SYNC_ALERTS_WEBHOOK TO ROLE SYNC_SERVICE_ROLE;
--   GRANT READ ON SECRET SYNC_DB.SYNC.SYNC_ALERTS_WEBHOOK_SECRET TO ROLE SYNC_SERVICE_ROLE;

-- Check the e-mail integration by hand (the same statement the service runs):
--   CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(
--     SNOWFLAKE.NOTIFICATION.TEXT_PLAIN('Volume Data Sync: test alert'),
--     SNOWFLAKE.NOTIFICATION.INTEGRATION('SYNC_ALERTS_EMAIL'));

-- The example dashboard's users reach its endpoint (spec.yaml service role "viewer"), not the admin app.
CREATE ROLE IF NOT EXISTS SYNC_VIEWER COMMENT = 'end users of the Volume Data Sync example dashboard';
GRANT ROLE SYNC_VIEWER TO ROLE SYSADMIN;
USE ROLE SYNC_SERVICE_ROLE;
GRANT SERVICE ROLE VOLUME_DATA_SYNC!VIEWER TO ROLE SYNC_VIEWER;
-- The dashboard's address: ingress_url of the endpoint "dashboard" (SHOW ENDPOINTS IN SERVICE VOLUME_DATA_SYNC).
