-- AlterTable
ALTER TABLE "PreAuthKey" ADD COLUMN     "description" TEXT NOT NULL DEFAULT '',
ADD COLUMN     "lastUsedAt" TIMESTAMP(3);
