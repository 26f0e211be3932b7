-- AlterTable
ALTER TABLE "User" ADD COLUMN     "oidcSyncedAt" TIMESTAMP(3);
