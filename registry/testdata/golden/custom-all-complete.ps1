# crashkey arm: hotkey RCtrl+Space (hold the modifiers, press the last key twice) via crashdump\Dump1Keys/Dump2Key 0x02/0x3d, CrashOnCtrlScroll removed
# keyboard drivers: i8042prt, kbdhid, hyperkbd; dump type: complete
# Run in the guest as Administrator: powershell -ExecutionPolicy Bypass -File FILE.ps1
# Restart Windows for these settings to take effect: the keyboard drivers and the crash-dump settings are read only at boot.
#Requires -RunAsAdministrator
$ErrorActionPreference = 'Stop'

$key = 'HKLM:\SYSTEM\CurrentControlSet\Services\i8042prt\Parameters'
if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }
Remove-ItemProperty -Path $key -Name 'CrashOnCtrlScroll' -ErrorAction SilentlyContinue

$key = 'HKLM:\SYSTEM\CurrentControlSet\Services\i8042prt\crashdump'
if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }
Set-ItemProperty -Path $key -Name 'Dump1Keys' -Type DWord -Value 2
Set-ItemProperty -Path $key -Name 'Dump2Key' -Type DWord -Value 61

$key = 'HKLM:\SYSTEM\CurrentControlSet\Services\kbdhid\Parameters'
if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }
Remove-ItemProperty -Path $key -Name 'CrashOnCtrlScroll' -ErrorAction SilentlyContinue

$key = 'HKLM:\SYSTEM\CurrentControlSet\Services\kbdhid\crashdump'
if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }
Set-ItemProperty -Path $key -Name 'Dump1Keys' -Type DWord -Value 2
Set-ItemProperty -Path $key -Name 'Dump2Key' -Type DWord -Value 61

$key = 'HKLM:\SYSTEM\CurrentControlSet\Services\hyperkbd\Parameters'
if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }
Remove-ItemProperty -Path $key -Name 'CrashOnCtrlScroll' -ErrorAction SilentlyContinue

$key = 'HKLM:\SYSTEM\CurrentControlSet\Services\hyperkbd\crashdump'
if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }
Set-ItemProperty -Path $key -Name 'Dump1Keys' -Type DWord -Value 2
Set-ItemProperty -Path $key -Name 'Dump2Key' -Type DWord -Value 61

$key = 'HKLM:\SYSTEM\CurrentControlSet\Control\CrashControl'
if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }
Set-ItemProperty -Path $key -Name 'CrashDumpEnabled' -Type DWord -Value 1
Remove-ItemProperty -Path $key -Name 'FilterPages' -ErrorAction SilentlyContinue
Set-ItemProperty -Path $key -Name 'AutoReboot' -Type DWord -Value 1
Set-ItemProperty -Path $key -Name 'Overwrite' -Type DWord -Value 1
Set-ItemProperty -Path $key -Name 'AlwaysKeepMemoryDump' -Type DWord -Value 1
Set-ItemProperty -Path $key -Name 'DumpFile' -Type ExpandString -Value '%SystemRoot%\MEMORY.DMP'
Set-ItemProperty -Path $key -Name 'MinidumpDir' -Type ExpandString -Value '%SystemRoot%\Minidump'

Write-Host 'Restart Windows for these settings to take effect: the keyboard drivers and the crash-dump settings are read only at boot.'
Write-Host 'Restart now with: Restart-Computer'
