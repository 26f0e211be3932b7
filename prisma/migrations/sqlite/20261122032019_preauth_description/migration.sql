-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_PreAuthKey" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "reusable" BOOLEAN NOT NULL DEFAULT false,
    "ephemeral" BOOLEAN NOT NULL DEFAULT false,
    "tags" TEXT NOT NULL DEFAULT '[]',
    "userId" TEXT,
    "expiresAt" DATETIME NOT NULL,
    "revokedAt" DATETIME,
    "usedCount" INTEGER NOT NULL DEFAULT 0,
    "createdBy" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "description" TEXT NOT NULL DEFAULT '',
    "lastUsedAt" DATETIME,
    CONSTRAINT "PreAuthKey_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_PreAuthKey" ("createdAt", "createdBy", "ephemeral", "expiresAt", "hash", "id", "prefix", "reusable", "revokedAt", "tags", "usedCount", "userId") SELECT "createdAt", "createdBy", "ephemeral", "expiresAt", "hash", "id", "prefix", "reusable", "revokedAt", "tags", "usedCount", "userId" FROM "PreAuthKey";
DROP TABLE "PreAuthKey";
ALTER TABLE "new_PreAuthKey" RENAME TO "PreAuthKey";
CREATE UNIQUE INDEX "PreAuthKey_prefix_key" ON "PreAuthKey"("prefix");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
