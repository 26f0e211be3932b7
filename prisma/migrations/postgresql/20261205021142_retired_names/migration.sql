-- CreateTable
CREATE TABLE "RetiredName" (
    "name" TEXT NOT NULL,
    "owner" TEXT NOT NULL,
    "retiredAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "RetiredName_pkey" PRIMARY KEY ("name")
);

-- CreateIndex
CREATE INDEX "RetiredName_retiredAt_idx" ON "RetiredName"("retiredAt");
