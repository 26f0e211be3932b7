-- AlterTable
ALTER TABLE "Node" ADD COLUMN     "advertisedRoutes" TEXT NOT NULL DEFAULT '[]',
ADD COLUMN     "approvedRoutes" TEXT NOT NULL DEFAULT '[]',
ADD COLUMN     "authorized" BOOLEAN NOT NULL DEFAULT true,
ADD COLUMN     "endpoints" TEXT NOT NULL DEFAULT '[]',
ADD COLUMN     "ephemeral" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "homeRegion" INTEGER,
ADD COLUMN     "hostname" TEXT NOT NULL DEFAULT '',
ADD COLUMN     "ipv4" TEXT,
ADD COLUMN     "ipv6" TEXT,
ADD COLUMN     "lastSeen" TIMESTAMP(3),
ADD COLUMN     "online" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "os" TEXT NOT NULL DEFAULT '',
ADD COLUMN     "preAuthKeyId" TEXT,
ADD COLUMN     "tags" TEXT NOT NULL DEFAULT '[]',
ADD COLUMN     "userId" TEXT;

-- CreateTable
CREATE TABLE "PreAuthKey" (
    "id" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "reusable" BOOLEAN NOT NULL DEFAULT false,
    "ephemeral" BOOLEAN NOT NULL DEFAULT false,
    "tags" TEXT NOT NULL DEFAULT '[]',
    "userId" TEXT,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "revokedAt" TIMESTAMP(3),
    "usedCount" INTEGER NOT NULL DEFAULT 0,
    "createdBy" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PreAuthKey_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "IpAllocation" (
    "id" TEXT NOT NULL,
    "last" INTEGER NOT NULL,

    CONSTRAINT "IpAllocation_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "PolicyVersion" (
    "id" SERIAL NOT NULL,
    "text" TEXT NOT NULL,
    "createdBy" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PolicyVersion_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "PreAuthKey_prefix_key" ON "PreAuthKey"("prefix");

-- CreateIndex
CREATE UNIQUE INDEX "Node_name_key" ON "Node"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Node_ipv4_key" ON "Node"("ipv4");

-- CreateIndex
CREATE UNIQUE INDEX "Node_ipv6_key" ON "Node"("ipv6");

-- CreateIndex
CREATE INDEX "Node_userId_idx" ON "Node"("userId");

-- AddForeignKey
ALTER TABLE "Node" ADD CONSTRAINT "Node_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Node" ADD CONSTRAINT "Node_preAuthKeyId_fkey" FOREIGN KEY ("preAuthKeyId") REFERENCES "PreAuthKey"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "PreAuthKey" ADD CONSTRAINT "PreAuthKey_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
