-- CreateTable
CREATE TABLE "UsedSignature" (
    "mac" TEXT NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "UsedSignature_pkey" PRIMARY KEY ("mac")
);

-- CreateIndex
CREATE INDEX "UsedSignature_expiresAt_idx" ON "UsedSignature"("expiresAt");
