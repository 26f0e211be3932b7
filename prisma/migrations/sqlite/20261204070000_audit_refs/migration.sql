-- Data only (control/src/audit.ts): actors and creators are "user:<id>",
-- "node:<id>", "system" or "local", and a machine is a "node" in stored actions.
UPDATE "AuditEvent" SET "actor" = 'user:' || "actor"
  WHERE "actor" NOT IN ('system', 'local') AND "actor" NOT LIKE 'user:%' AND "actor" NOT LIKE 'node:%';
UPDATE "AuditEvent" SET "action" = 'node.' || substr("action", 9) WHERE "action" LIKE 'machine.%';
UPDATE "AuditEvent" SET "action" = 'node.routes' WHERE "action" = 'node.routes_approve';
UPDATE "PolicyVersion" SET "createdBy" = 'user:' || "createdBy"
  WHERE "createdBy" NOT IN ('system', 'local') AND "createdBy" NOT LIKE 'user:%';
UPDATE "PreAuthKey" SET "createdBy" = 'user:' || "createdBy"
  WHERE "createdBy" NOT IN ('system', 'local') AND "createdBy" NOT LIKE 'user:%';
