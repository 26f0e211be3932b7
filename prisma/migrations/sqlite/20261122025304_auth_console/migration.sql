-- CreateTable
CREATE TABLE "Session" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "userId" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastSeenAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" DATETIME NOT NULL,
    "userAgent" TEXT NOT NULL DEFAULT '',
    CONSTRAINT "Session_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "ApiToken" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "scopes" TEXT NOT NULL,
    "expiresAt" DATETIME NOT NULL,
    "lastUsedAt" DATETIME,
    "revokedAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ApiToken_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Invitation" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "hash" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "createdBy" TEXT NOT NULL,
    "expiresAt" DATETIME NOT NULL,
    "acceptedAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "ConnectionLog" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "reporterId" TEXT NOT NULL,
    "direction" TEXT NOT NULL,
    "proto" INTEGER NOT NULL,
    "srcIp" TEXT NOT NULL,
    "srcPort" INTEGER NOT NULL,
    "dstIp" TEXT NOT NULL,
    "dstPort" INTEGER NOT NULL,
    "srcNodeId" TEXT,
    "dstNodeId" TEXT,
    "startedAt" DATETIME NOT NULL,
    "endedAt" DATETIME,
    "txBytes" BIGINT NOT NULL DEFAULT 0,
    "rxBytes" BIGINT NOT NULL DEFAULT 0,
    "txPackets" INTEGER NOT NULL DEFAULT 0,
    "rxPackets" INTEGER NOT NULL DEFAULT 0,
    "receivedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_User" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "email" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "passwordHash" TEXT,
    "oidcSubject" TEXT,
    "groups" TEXT NOT NULL DEFAULT '[]',
    "lastLoginAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL
);
INSERT INTO "new_User" ("createdAt", "email", "id", "name", "passwordHash", "role", "updatedAt") SELECT "createdAt", "email", "id", "name", "passwordHash", "role", "updatedAt" FROM "User";
DROP TABLE "User";
ALTER TABLE "new_User" RENAME TO "User";
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");
CREATE UNIQUE INDEX "User_oidcSubject_key" ON "User"("oidcSubject");
CREATE TABLE "new_Node" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "nodeKey" TEXT NOT NULL,
    "previousKeys" TEXT NOT NULL DEFAULT '[]',
    "name" TEXT NOT NULL,
    "hostname" TEXT NOT NULL DEFAULT '',
    "ipv4" TEXT,
    "ipv6" TEXT,
    "os" TEXT NOT NULL DEFAULT '',
    "tags" TEXT NOT NULL DEFAULT '[]',
    "userId" TEXT,
    "advertisedRoutes" TEXT NOT NULL DEFAULT '[]',
    "approvedRoutes" TEXT NOT NULL DEFAULT '[]',
    "endpoints" TEXT NOT NULL DEFAULT '[]',
    "homeRegion" INTEGER,
    "online" BOOLEAN NOT NULL DEFAULT false,
    "lastSeen" DATETIME,
    "ephemeral" BOOLEAN NOT NULL DEFAULT false,
    "authorized" BOOLEAN NOT NULL DEFAULT true,
    "preAuthKeyId" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    "expiresAt" DATETIME,
    CONSTRAINT "Node_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "Node_preAuthKeyId_fkey" FOREIGN KEY ("preAuthKeyId") REFERENCES "PreAuthKey" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_Node" ("advertisedRoutes", "approvedRoutes", "authorized", "createdAt", "endpoints", "ephemeral", "expiresAt", "homeRegion", "hostname", "id", "ipv4", "ipv6", "lastSeen", "name", "nodeKey", "online", "os", "preAuthKeyId", "tags", "updatedAt", "userId") SELECT "advertisedRoutes", "approvedRoutes", "authorized", "createdAt", "endpoints", "ephemeral", "expiresAt", "homeRegion", "hostname", "id", "ipv4", "ipv6", "lastSeen", "name", "nodeKey", "online", "os", "preAuthKeyId", "tags", "updatedAt", "userId" FROM "Node";
DROP TABLE "Node";
ALTER TABLE "new_Node" RENAME TO "Node";
CREATE UNIQUE INDEX "Node_nodeKey_key" ON "Node"("nodeKey");
CREATE UNIQUE INDEX "Node_name_key" ON "Node"("name");
CREATE UNIQUE INDEX "Node_ipv4_key" ON "Node"("ipv4");
CREATE UNIQUE INDEX "Node_ipv6_key" ON "Node"("ipv6");
CREATE INDEX "Node_userId_idx" ON "Node"("userId");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;

-- CreateIndex
CREATE INDEX "Session_userId_idx" ON "Session"("userId");

-- CreateIndex
CREATE UNIQUE INDEX "ApiToken_prefix_key" ON "ApiToken"("prefix");

-- CreateIndex
CREATE UNIQUE INDEX "Invitation_hash_key" ON "Invitation"("hash");

-- CreateIndex
CREATE INDEX "ConnectionLog_startedAt_idx" ON "ConnectionLog"("startedAt");

-- CreateIndex
CREATE INDEX "ConnectionLog_reporterId_startedAt_idx" ON "ConnectionLog"("reporterId", "startedAt");
