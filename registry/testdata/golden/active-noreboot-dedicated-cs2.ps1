# crashkey arm: hotkey RCtrl+ScrollLock (hold the modifiers, press the last key twice) via Parameters\CrashOnCtrlScroll=1
# keyboard drivers: i8042prt, kbdhid; dump type: active
# Run in the guest as Administrator: powershell -ExecutionPolicy Bypass -File FILE.ps1
# Restart Windows for these settings to take effect: the keyboard drivers and the crash-dump settings are read only at boot.
#Requires -RunAsAdministrator
$ErrorActionPreference = 'Stop'

$key = 'HKLM:\SYSTEM\ControlSet002\Services\i8042prt\Parameters'
if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }
Set-ItemProperty -Path $key -Name 'CrashOnCtrlScroll' -Type DWord -Value 1

$key = 'HKLM:\SYSTEM\ControlSet002\Services\kbdhid\Parameters'
if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }
Set-ItemProperty -Path $key -Name 'CrashOnCtrlScroll' -Type DWord -Value 1

$key = 'HKLM:\SYSTEM\ControlSet002\Control\CrashControl'
if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }
Set-ItemProperty -Path $key -Name 'CrashDumpEnabled' -Type DWord -Value 1
Set-ItemProperty -Path $key -Name 'FilterPages' -Type DWord -Value 1
Set-ItemProperty -Path $key -Name 'AutoReboot' -Type DWord -Value 0
Set-ItemProperty -Path $key -Name 'Overwrite' -Type DWord -Value 1
Set-ItemProperty -Path $key -Name 'AlwaysKeepMemoryDump' -Type DWord -Value 1
Set-ItemProperty -Path $key -Name 'DumpFile' -Type ExpandString -Value '%SystemRoot%\MEMORY.DMP'
Set-ItemProperty -Path $key -Name 'MinidumpDir' -Type ExpandString -Value '%SystemRoot%\Minidump'
Set-ItemProperty -Path $key -Name 'DedicatedDumpFile' -Type String -Value 'C:\Dump''s\dedicated.sys'

Write-Host 'Restart Windows for these settings to take effect: the keyboard drivers and the crash-dump settings are read only at boot.'
Write-Host 'Restart now with: Restart-Computer'
