-- AlterTable
ALTER TABLE "User" ADD COLUMN "oidcSyncedAt" DATETIME;
