-- CreateTable
CREATE TABLE "LoginThrottle" (
    "key" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "account" TEXT,
    "address" TEXT,
    "failures" INTEGER NOT NULL DEFAULT 0,
    "lastAt" TIMESTAMP(3) NOT NULL,
    "waitUntil" TIMESTAMP(3) NOT NULL,
    "auditedAt" TIMESTAMP(3),

    CONSTRAINT "LoginThrottle_pkey" PRIMARY KEY ("key")
);

-- CreateIndex
CREATE INDEX "LoginThrottle_account_idx" ON "LoginThrottle"("account");

-- CreateIndex
CREATE INDEX "LoginThrottle_address_kind_idx" ON "LoginThrottle"("address", "kind");

-- CreateIndex
CREATE INDEX "LoginThrottle_lastAt_idx" ON "LoginThrottle"("lastAt");
