-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
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
    "wireguardOnly" BOOLEAN NOT NULL DEFAULT false,
    "gatewayId" TEXT,
    CONSTRAINT "Node_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "Node_preAuthKeyId_fkey" FOREIGN KEY ("preAuthKeyId") REFERENCES "PreAuthKey" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_Node" ("advertisedRoutes", "approvedRoutes", "authorized", "createdAt", "endpoints", "ephemeral", "expiresAt", "homeRegion", "hostname", "id", "ipv4", "ipv6", "lastSeen", "name", "nodeKey", "online", "os", "preAuthKeyId", "previousKeys", "tags", "updatedAt", "userId") SELECT "advertisedRoutes", "approvedRoutes", "authorized", "createdAt", "endpoints", "ephemeral", "expiresAt", "homeRegion", "hostname", "id", "ipv4", "ipv6", "lastSeen", "name", "nodeKey", "online", "os", "preAuthKeyId", "previousKeys", "tags", "updatedAt", "userId" FROM "Node";
DROP TABLE "Node";
ALTER TABLE "new_Node" RENAME TO "Node";
CREATE UNIQUE INDEX "Node_nodeKey_key" ON "Node"("nodeKey");
CREATE UNIQUE INDEX "Node_name_key" ON "Node"("name");
CREATE UNIQUE INDEX "Node_ipv4_key" ON "Node"("ipv4");
CREATE UNIQUE INDEX "Node_ipv6_key" ON "Node"("ipv6");
CREATE INDEX "Node_userId_idx" ON "Node"("userId");
CREATE INDEX "Node_gatewayId_idx" ON "Node"("gatewayId");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
