-- CreateTable
CREATE TABLE "UsedSignature" (
    "mac" TEXT NOT NULL PRIMARY KEY,
    "expiresAt" DATETIME NOT NULL
);

-- CreateIndex
CREATE INDEX "UsedSignature_expiresAt_idx" ON "UsedSignature"("expiresAt");
