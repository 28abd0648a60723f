-- The MSI's own dialogs for a double-click install (wixl 0.101 has no UI elements), added by
-- packaging/build.sh with msibuild, one statement per line. Sizes are installer units (a
-- 370 x 270 dialog is the usual size). Without these tables msiexec shows only a bare progress
-- bar and nothing when it is done.
--   WelcomeDlg     what is installed where, and the per-user command for people without admin rights
--   ProgressDlg    the current action and a progress bar (modeless: installation runs behind it)
--   ExitDlg        installed (or removed, when uninstalling from Settings > Apps) and how to start
--   UserExitDlg    cancelled, nothing changed
--   FatalErrorDlg  failed, nothing changed, and how to get the log
-- Silent installs (/qn) and Intune never show them. .ci/wine.sh clicks through them under Wine.
CREATE TABLE `TextStyle` (`TextStyle` CHAR(72) NOT NULL, `FaceName` CHAR(32) NOT NULL, `Size` SHORT NOT NULL, `Color` LONG, `StyleBits` SHORT PRIMARY KEY `TextStyle`)
CREATE TABLE `Dialog` (`Dialog` CHAR(72) NOT NULL, `HCentering` SHORT NOT NULL, `VCentering` SHORT NOT NULL, `Width` SHORT NOT NULL, `Height` SHORT NOT NULL, `Attributes` LONG, `Title` CHAR(128) LOCALIZABLE, `Control_First` CHAR(50) NOT NULL, `Control_Default` CHAR(50), `Control_Cancel` CHAR(50) PRIMARY KEY `Dialog`)
CREATE TABLE `Control` (`Dialog_` CHAR(72) NOT NULL, `Control` CHAR(50) NOT NULL, `Type` CHAR(20) NOT NULL, `X` SHORT NOT NULL, `Y` SHORT NOT NULL, `Width` SHORT NOT NULL, `Height` SHORT NOT NULL, `Attributes` LONG, `Property` CHAR(72), `Text` LONGCHAR LOCALIZABLE, `Control_Next` CHAR(50), `Help` CHAR(255) LOCALIZABLE PRIMARY KEY `Dialog_`, `Control`)
CREATE TABLE `ControlEvent` (`Dialog_` CHAR(72) NOT NULL, `Control_` CHAR(50) NOT NULL, `Event` CHAR(50) NOT NULL, `Argument` CHAR(255) NOT NULL, `Condition` CHAR(255), `Ordering` SHORT PRIMARY KEY `Dialog_`, `Control_`, `Event`, `Argument`, `Condition`)
CREATE TABLE `ControlCondition` (`Dialog_` CHAR(72) NOT NULL, `Control_` CHAR(50) NOT NULL, `Action` CHAR(50) NOT NULL, `Condition` CHAR(255) NOT NULL PRIMARY KEY `Dialog_`, `Control_`, `Action`, `Condition`)
CREATE TABLE `EventMapping` (`Dialog_` CHAR(72) NOT NULL, `Control_` CHAR(50) NOT NULL, `Event` CHAR(50) NOT NULL, `Attribute` CHAR(50) NOT NULL PRIMARY KEY `Dialog_`, `Control_`, `Event`)
INSERT INTO `TextStyle` (`TextStyle`, `FaceName`, `Size`, `StyleBits`) VALUES ('AW_Normal', 'Tahoma', 8, 0)
INSERT INTO `TextStyle` (`TextStyle`, `FaceName`, `Size`, `StyleBits`) VALUES ('AW_Title', 'Tahoma', 12, 1)
INSERT INTO `Property` (`Property`, `Value`) VALUES ('DefaultUIFont', 'AW_Normal')
-- Welcome: Install (the default button, Enter) goes on; Cancel ends with UserExitDlg.
INSERT INTO `Dialog` (`Dialog`, `HCentering`, `VCentering`, `Width`, `Height`, `Attributes`, `Title`, `Control_First`, `Control_Default`, `Control_Cancel`) VALUES ('WelcomeDlg', 50, 50, 370, 270, 3, 'Autopilot Wizard Setup', 'Install', 'Install', 'Cancel')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('WelcomeDlg', 'Heading', 'Text', 20, 15, 330, 20, 196611, '{\AW_Title}Install Autopilot Wizard [ProductVersion]')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('WelcomeDlg', 'About', 'Text', 20, 45, 330, 30, 196611, 'Autopilot Wizard sets up Windows Autopilot user-driven mode with Microsoft Entra join in your Microsoft 365 tenant, step by step.')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('WelcomeDlg', 'Where', 'Text', 20, 80, 330, 50, 196611, 'It goes to [INSTALLDIR] for every user of this PC, with an entry in the Start menu, and the folder is added to PATH so that autopilot-wizard works in cmd and PowerShell. Windows asks for administrator rights.')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('WelcomeDlg', 'PerUser', 'Text', 20, 135, 330, 40, 196611, 'No administrator rights? Cancel, and install it for yourself only from cmd: msiexec /i "[OriginalDatabase]" MSIINSTALLPERUSER=1')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`) VALUES ('WelcomeDlg', 'BottomLine', 'Line', 0, 234, 370, 0, 1)
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`, `Control_Next`) VALUES ('WelcomeDlg', 'Install', 'PushButton', 236, 243, 56, 17, 3, '&Install', 'Cancel')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`, `Control_Next`) VALUES ('WelcomeDlg', 'Cancel', 'PushButton', 304, 243, 56, 17, 3, 'Cancel', 'Install')
INSERT INTO `ControlEvent` (`Dialog_`, `Control_`, `Event`, `Argument`, `Condition`, `Ordering`) VALUES ('WelcomeDlg', 'Install', 'EndDialog', 'Return', '1', 1)
INSERT INTO `ControlEvent` (`Dialog_`, `Control_`, `Event`, `Argument`, `Condition`, `Ordering`) VALUES ('WelcomeDlg', 'Cancel', 'EndDialog', 'Exit', '1', 1)
-- Progress: modeless, so the installation runs while it shows.
INSERT INTO `Dialog` (`Dialog`, `HCentering`, `VCentering`, `Width`, `Height`, `Attributes`, `Title`, `Control_First`) VALUES ('ProgressDlg', 50, 50, 370, 270, 1, 'Autopilot Wizard Setup', 'ProgressBar')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('ProgressDlg', 'Installing', 'Text', 20, 15, 330, 20, 196611, '{\AW_Title}Installing Autopilot Wizard')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('ProgressDlg', 'Removing', 'Text', 20, 15, 330, 20, 196610, '{\AW_Title}Removing Autopilot Wizard')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('ProgressDlg', 'Wait', 'Text', 20, 45, 330, 20, 196611, 'This takes a few seconds.')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`) VALUES ('ProgressDlg', 'ActionText', 'Text', 20, 90, 330, 15, 196611)
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('ProgressDlg', 'ProgressBar', 'ProgressBar', 20, 110, 330, 12, 65537, 'Progress done')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`) VALUES ('ProgressDlg', 'BottomLine', 'Line', 0, 234, 370, 0, 1)
INSERT INTO `ControlCondition` (`Dialog_`, `Control_`, `Action`, `Condition`) VALUES ('ProgressDlg', 'Installing', 'Hide', 'REMOVE~="ALL"')
INSERT INTO `ControlCondition` (`Dialog_`, `Control_`, `Action`, `Condition`) VALUES ('ProgressDlg', 'Removing', 'Show', 'REMOVE~="ALL"')
INSERT INTO `EventMapping` (`Dialog_`, `Control_`, `Event`, `Attribute`) VALUES ('ProgressDlg', 'ActionText', 'ActionText', 'Text')
INSERT INTO `EventMapping` (`Dialog_`, `Control_`, `Event`, `Attribute`) VALUES ('ProgressDlg', 'ProgressBar', 'SetProgress', 'Progress')
-- Finished: what to do next (or that it is gone).
INSERT INTO `Dialog` (`Dialog`, `HCentering`, `VCentering`, `Width`, `Height`, `Attributes`, `Title`, `Control_First`, `Control_Default`, `Control_Cancel`) VALUES ('ExitDlg', 50, 50, 370, 270, 3, 'Autopilot Wizard Setup', 'Finish', 'Finish', 'Finish')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('ExitDlg', 'Installed', 'Text', 20, 15, 330, 20, 196611, '{\AW_Title}Autopilot Wizard is installed')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('ExitDlg', 'Start', 'Text', 20, 45, 330, 40, 196611, 'Start it from the Start menu: Autopilot Wizard. To look around without touching a tenant, choose "Try the simulated tenant" on its first page.')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('ExitDlg', 'Cli', 'Text', 20, 90, 330, 40, 196611, 'In a new cmd or PowerShell window, autopilot-wizard check-csv FILE checks hardware-hash files. README.txt in [INSTALLDIR] tells the rest.')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('ExitDlg', 'Removed', 'Text', 20, 15, 330, 20, 196610, '{\AW_Title}Autopilot Wizard was removed')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('ExitDlg', 'Kept', 'Text', 20, 45, 330, 40, 196610, 'Your settings, logs and plan states in your profile (AppData) were kept; delete the autopilot-wizard folders there to remove them too.')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`) VALUES ('ExitDlg', 'BottomLine', 'Line', 0, 234, 370, 0, 1)
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('ExitDlg', 'Finish', 'PushButton', 304, 243, 56, 17, 3, '&Finish')
INSERT INTO `ControlEvent` (`Dialog_`, `Control_`, `Event`, `Argument`, `Condition`, `Ordering`) VALUES ('ExitDlg', 'Finish', 'EndDialog', 'Return', '1', 1)
INSERT INTO `ControlCondition` (`Dialog_`, `Control_`, `Action`, `Condition`) VALUES ('ExitDlg', 'Installed', 'Hide', 'REMOVE~="ALL"')
INSERT INTO `ControlCondition` (`Dialog_`, `Control_`, `Action`, `Condition`) VALUES ('ExitDlg', 'Start', 'Hide', 'REMOVE~="ALL"')
INSERT INTO `ControlCondition` (`Dialog_`, `Control_`, `Action`, `Condition`) VALUES ('ExitDlg', 'Cli', 'Hide', 'REMOVE~="ALL"')
INSERT INTO `ControlCondition` (`Dialog_`, `Control_`, `Action`, `Condition`) VALUES ('ExitDlg', 'Removed', 'Show', 'REMOVE~="ALL"')
INSERT INTO `ControlCondition` (`Dialog_`, `Control_`, `Action`, `Condition`) VALUES ('ExitDlg', 'Kept', 'Show', 'REMOVE~="ALL"')
-- Cancelled.
INSERT INTO `Dialog` (`Dialog`, `HCentering`, `VCentering`, `Width`, `Height`, `Attributes`, `Title`, `Control_First`, `Control_Default`, `Control_Cancel`) VALUES ('UserExitDlg', 50, 50, 370, 270, 3, 'Autopilot Wizard Setup', 'Finish', 'Finish', 'Finish')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('UserExitDlg', 'Heading', 'Text', 20, 15, 330, 20, 196611, '{\AW_Title}Setup was cancelled')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('UserExitDlg', 'Nothing', 'Text', 20, 45, 330, 30, 196611, 'Nothing was installed or changed. Run the installer again when you are ready.')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`) VALUES ('UserExitDlg', 'BottomLine', 'Line', 0, 234, 370, 0, 1)
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('UserExitDlg', 'Finish', 'PushButton', 304, 243, 56, 17, 3, '&Finish')
INSERT INTO `ControlEvent` (`Dialog_`, `Control_`, `Event`, `Argument`, `Condition`, `Ordering`) VALUES ('UserExitDlg', 'Finish', 'EndDialog', 'Return', '1', 1)
-- Failed.
INSERT INTO `Dialog` (`Dialog`, `HCentering`, `VCentering`, `Width`, `Height`, `Attributes`, `Title`, `Control_First`, `Control_Default`, `Control_Cancel`) VALUES ('FatalErrorDlg', 50, 50, 370, 270, 3, 'Autopilot Wizard Setup', 'Finish', 'Finish', 'Finish')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('FatalErrorDlg', 'Heading', 'Text', 20, 15, 330, 20, 196611, '{\AW_Title}Setup could not finish')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('FatalErrorDlg', 'Nothing', 'Text', 20, 45, 330, 30, 196611, 'Nothing was installed or changed.')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('FatalErrorDlg', 'Log', 'Text', 20, 80, 330, 50, 196611, 'To see why, run in cmd: msiexec /i "[OriginalDatabase]" /l*v install.log and read the lines above "Return value 3" in install.log.')
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`) VALUES ('FatalErrorDlg', 'BottomLine', 'Line', 0, 234, 370, 0, 1)
INSERT INTO `Control` (`Dialog_`, `Control`, `Type`, `X`, `Y`, `Width`, `Height`, `Attributes`, `Text`) VALUES ('FatalErrorDlg', 'Finish', 'PushButton', 304, 243, 56, 17, 3, '&Finish')
INSERT INTO `ControlEvent` (`Dialog_`, `Control_`, `Event`, `Argument`, `Condition`, `Ordering`) VALUES ('FatalErrorDlg', 'Finish', 'EndDialog', 'Return', '1', 1)
-- When each shows: the welcome only for a new install (not for an uninstall from Settings); the
-- negative sequence numbers are the end dialogs (success, cancelled, failed).
INSERT INTO `InstallUISequence` (`Action`, `Condition`, `Sequence`) VALUES ('WelcomeDlg', 'NOT Installed', 1297)
INSERT INTO `InstallUISequence` (`Action`, `Sequence`) VALUES ('ProgressDlg', 1298)
INSERT INTO `InstallUISequence` (`Action`, `Sequence`) VALUES ('ExitDlg', -1)
INSERT INTO `InstallUISequence` (`Action`, `Sequence`) VALUES ('UserExitDlg', -2)
INSERT INTO `InstallUISequence` (`Action`, `Sequence`) VALUES ('FatalErrorDlg', -3)
