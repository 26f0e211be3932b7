-- CreateTable
CREATE TABLE "LoginThrottle" (
    "key" TEXT NOT NULL PRIMARY KEY,
    "kind" TEXT NOT NULL,
    "account" TEXT,
    "address" TEXT,
    "failures" INTEGER NOT NULL DEFAULT 0,
    "lastAt" DATETIME NOT NULL,
    "waitUntil" DATETIME NOT NULL,
    "auditedAt" DATETIME
);

-- CreateIndex
CREATE INDEX "LoginThrottle_account_idx" ON "LoginThrottle"("account");

-- CreateIndex
CREATE INDEX "LoginThrottle_address_kind_idx" ON "LoginThrottle"("address", "kind");

-- CreateIndex
CREATE INDEX "LoginThrottle_lastAt_idx" ON "LoginThrottle"("lastAt");
