-- CreateTable
CREATE TABLE "RetiredName" (
    "name" TEXT NOT NULL PRIMARY KEY,
    "owner" TEXT NOT NULL,
    "retiredAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateIndex
CREATE INDEX "RetiredName_retiredAt_idx" ON "RetiredName"("retiredAt");
