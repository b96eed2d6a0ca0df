//! Every user-facing string of the app, in English and Simplified Chinese: one typed
//! catalogue.
//!
//! [`Text`] is a key per fixed string, defined by one table where each row must give both
//! languages (a row without its Chinese does not compile); [`Msg`] holds the strings with
//! values in them (counts, names, reasons), with one exhaustive `match` per language. Close
//! codes ([`close_summary`]) and single sign-on refusals ([`sso_refusal`]) are translated
//! here too; the relay's own reason stays English and is shown beside them as detail.
//!
//! Plain data on `std` and `common` only, so the end-to-end tests read the same table
//! (`tests/browser_i18n.rs` includes this file) to find English left on a Chinese page.
//! Which language is in force, and the reactive `t`, live in `locale`.

use common::CloseCode;
use common::close::standard;
use common::sso::SsoRefusal;

/// The app's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    /// The BCP 47 tag: `lang` of the page, and the stored setting.
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Zh => "zh-CN",
        }
    }

    /// The language's name in itself (the same in every language, by design).
    pub fn native_name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::Zh => "简体中文",
        }
    }

    /// The language of one BCP 47 tag, if the app has it (`zh`, `zh-CN`, `zh-Hans-SG`,
    /// `en-GB`, case-insensitive). Chinese in any script maps to Simplified Chinese: closer
    /// to a Traditional Chinese reader than English is.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next()?.trim().to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Self::En),
            "zh" => Some(Self::Zh),
            _ => None,
        }
    }

    /// The first of the browser's languages (`navigator.languages`, preferred first) that
    /// the app has; English if none.
    pub fn pick<S: AsRef<str>>(preferred: &[S]) -> Self {
        preferred
            .iter()
            .find_map(|tag| Self::from_tag(tag.as_ref()))
            .unwrap_or(Self::En)
    }
}

/// Defines [`Text`] from rows `Key => "English", "中文";`.
macro_rules! catalogue {
    ($($key:ident => $en:literal, $zh:literal;)*) => {
        /// A fixed string of the app.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Text {
            $($key,)*
        }

        impl Text {
            /// Every key, in table order (for the tests, here and in the browser's).
            #[cfg(test)]
            pub const ALL: &'static [Text] = &[$(Text::$key,)*];

            /// The string in `lang`.
            pub fn get(self, lang: Lang) -> &'static str {
                match lang {
                    Lang::En => match self {
                        $(Text::$key => $en,)*
                    },
                    Lang::Zh => match self {
                        $(Text::$key => $zh,)*
                    },
                }
            }
        }
    };
}

catalogue! {
    // The frame of every page.
    Redirecting => "Redirecting to the login page…", "正在跳转到登录页…";
    NoSuchPage => "No such page.", "没有这个页面。";
    BackToTargets => "Back to the targets", "返回目标列表";
    Targets => "Targets", "目标";
    YourGroups => "Your groups", "你的用户组";
    UserMenu => "User menu", "用户菜单";
    LogOut => "Log out", "退出登录";
    // Page titles.
    TitleShell => "Shell", "终端";
    TitleLogs => "Logs", "日志";
    TitleTail => "Tail", "文件跟踪";
    TitleChat => "Chat", "聊天";
    TitleJob => "Job", "任务";
    TitleNotFound => "Not found", "未找到";
    // Connection bar.
    Connecting => "Connecting…", "正在连接…";
    Connected => "Connected", "已连接";
    ConnectedResumed => "Connected (resumed)", "已连接（已恢复会话）";
    Retry => "Retry", "重试";
    ReconnectNow => "Reconnect now", "立即重连";
    ConnectionState => "Connection state", "连接状态";
    Stopped => "stopped", "已停止";
    // Login.
    LoginHeading => "Log in to Opsdeck", "登录 Opsdeck";
    EnterCredentials => "Enter your username and password.", "请输入用户名和密码。";
    WrongPassword => "Wrong username or password.", "用户名或密码错误。";
    Username => "Username", "用户名";
    Password => "Password", "密码";
    LoggingIn => "Logging in…", "正在登录…";
    LogIn => "Log in", "登录";
    SignInWith => "Single sign-on", "单点登录";
    // Picker.
    LoadingTargets => "Loading targets…", "正在加载目标…";
    NoTargets => "You have no targets. Ask an administrator for access.", "你没有可用的目标。请向管理员申请权限。";
    SectionLocal => "Shells on the relay's machine", "中继主机上的终端";
    SectionSsh => "SSH hosts", "SSH 主机";
    SectionKubernetes => "Kubernetes clusters", "Kubernetes 集群";
    SectionFiles => "Log files", "日志文件";
    SectionChat => "Chat rooms", "聊天室";
    SectionJobs => "Job output", "任务输出";
    SearchTargets => "Search targets", "搜索目标";
    NoKubernetes => "Kubernetes: no cluster is configured for you here.", "Kubernetes：此处没有为你配置的集群。";
    NoJobOutput => "Job output: not configured for you here (it needs Redis).", "任务输出：此处未为你配置（需要 Redis）。";
    NoTargetMatches => "No target matches the search.", "没有与搜索匹配的目标。";
    Namespaces => "Namespaces", "命名空间";
    LoadingPods => "Loading pods…", "正在加载 Pod…";
    NoPods => "No pods in this namespace.", "此命名空间中没有 Pod。";
    OpenShell => "Shell", "终端";
    OpenLogs => "Logs", "日志";
    JobToken => "Job token", "任务令牌";
    WatchOutput => "Watch output", "查看输出";
    // Terminal.
    NoStream => "This page has no stream.", "此页面没有数据流。";
    TerminalLabel => "Terminal", "终端窗口";
    TerminalTools => "Terminal tools", "终端工具";
    Copy => "Copy", "复制";
    Copied => "Copied", "已复制";
    CopyHint => "Copy the selection (Ctrl+Shift+C)", "复制选中的内容（Ctrl+Shift+C）";
    Paste => "Paste", "粘贴";
    PasteHint => "Paste (Ctrl+Shift+V)", "粘贴（Ctrl+Shift+V）";
    SearchScrollback => "Search scrollback", "搜索回滚内容";
    PreviousMatch => "Previous match (Shift+Enter)", "上一个匹配（Shift+Enter）";
    NextMatch => "Next match (Enter)", "下一个匹配（Enter）";
    NoMatch => "no match", "无匹配";
    ProgramEnded => "The program ended.", "程序已结束。";
    // Logs.
    Stop => "Stop", "停止";
    Start => "Start", "开始";
    Pause => "Pause", "暂停";
    Resume => "Resume", "继续";
    Follow => "Follow", "跟随";
    Clear => "Clear", "清空";
    FilterLines => "Filter lines", "筛选行";
    Download => "Download", "下载";
    Timestamps => "Timestamps", "时间戳";
    PreviousContainer => "Previous container", "上一个容器";
    StreamEnded => "the stream ended", "数据流已结束";
    LogTools => "Log tools", "日志工具";
    // Chat.
    ChatNotConnected => "Not connected: the message will be sent when the room is back.", "未连接：聊天室恢复后将发送这条消息。";
    ChatPlaceholder => "Message (Enter to send)", "消息（按 Enter 发送）";
    ChatMessage => "Message", "消息";
    Sending => "sending…", "发送中…";
    SendAgain => "Send again", "重新发送";
    // Stream notices.
    NewSessionNotResumed => "The earlier session could not be resumed: a new session was started.", "之前的会话无法恢复：已开启新会话。";
    NewSessionExpired => "The session had expired: a new session was started.", "会话已过期：已开启新会话。";
    // Settings.
    Settings => "Settings", "设置";
    OpenSettings => "Open the settings", "打开设置";
    FontSize => "Font size", "字号";
    Theme => "Theme", "主题";
    ThemeDark => "Dark", "深色";
    ThemeLight => "Light", "浅色";
    ThemeHighContrast => "High contrast", "高对比度";
    Renderer => "Renderer (terminals opened from now on)", "渲染器（对之后打开的终端生效）";
    RendererAuto => "Automatic (WebGL when a graphics card draws it, else DOM)", "自动（有显卡绘制时用 WebGL，否则用 DOM）";
    RendererWebgl => "WebGL (drawn by the graphics card)", "WebGL（由显卡绘制）";
    RendererDom => "DOM (page elements)", "DOM（页面元素）";
    Scrollback => "Scrollback lines", "回滚行数";
    CopyOnSelect => "Copy on select", "选中即复制";
    Language => "Language", "语言";
    BrowserLanguage => "The browser's language", "跟随浏览器";
    Close => "Close", "关闭";
    SettingsKeptHere => "Kept in this browser only.", "仅保存在此浏览器中。";
    SettingsCorrupt => "The saved settings could not be read; the defaults are in force.", "无法读取已保存的设置，已改用默认设置。";
    SettingsOtherVersion => "The saved settings are from another version; the defaults are in force.", "已保存的设置来自其他版本，已改用默认设置。";
    Dismiss => "Dismiss", "知道了";

    // The workspace (views/workspace.rs) and My sessions (views/sessions.rs).
    TitleWorkspace => "Workspace", "工作区";
    Recordings => "Recordings", "录像";
    TitleReplay => "Replay", "回放";
    TakeItBack => "Take it back", "收回会话";
    WsEmpty => "No panes yet. Open a target from the list of targets: \"New tab\" or \"Beside\".", "还没有窗格。从目标列表打开一个目标：“新标签页”或“并排”。";
    WsOpenTarget => "Open a target…", "打开目标…";
    MySessions => "My sessions", "我的会话";
    SplitRight => "Split right (Alt+Shift+V)", "向右拆分（Alt+Shift+V）";
    SplitBelow => "Split below (Alt+Shift+S)", "向下拆分（Alt+Shift+S）";
    ClosePane => "Close the pane and end its session (Alt+Shift+X)", "关闭窗格并结束其会话（Alt+Shift+X）";
    NotAPane => "This page cannot be shown in a pane.", "此页面不能在窗格中显示。";
    NewLayout => "a new workspace was started", "已新建工作区";
    LayoutUnreadable => "the saved layout could not be read", "无法读取已保存的布局";
    LayoutOtherVersion => "the saved layout is from another version of Opsdeck", "已保存的布局来自另一个版本的 Opsdeck";
    LayoutInconsistent => "the saved layout is inconsistent", "已保存的布局前后不一致";
    WorkspaceTabs => "Workspace tabs", "工作区标签页";
    DragPane => "Drag onto another pane to move it there (right half: beside it; left half: below it)", "拖到另一个窗格上即可移动（右半边：放在旁边；左半边：放在下方）";
    NewTab => "New tab", "新标签页";
    NewTabTitle => "Open in a new tab of the workspace", "在工作区的新标签页中打开";
    Beside => "Beside", "并排";
    BesideTitle => "Open beside the focused pane of the workspace", "在工作区当前窗格旁打开";
    WorkspaceKeys => "Alt+Shift+→/↓ next pane · Alt+Shift+←/↑ previous pane · Alt+Shift+] / [ next / previous tab · Alt+Shift+V split right · Alt+Shift+S split below · Alt+Shift+X close pane", "Alt+Shift+→/↓ 下一个窗格 · Alt+Shift+←/↑ 上一个窗格 · Alt+Shift+] / [ 下一个/上一个标签页 · Alt+Shift+V 向右拆分 · Alt+Shift+S 向下拆分 · Alt+Shift+X 关闭窗格";
    SessionsNone => "No live terminal sessions.", "没有活动的终端会话。";
    Refresh => "Refresh", "刷新";
    OpenHere => "Open here", "在此打开";
    ShownHere => "Shown here", "已在此显示";
    EndSession => "End", "结束";
    SessionAttached => "attached", "已连接";
    SessionWaiting => "waiting for a reconnect", "等待重连";
    SessionStarted => "started", "开始于";
    SessionActive => "last active", "最近活动";

    // The files pane (views/files.rs).
    TitleFiles => "Files", "文件";
    OpenFilesHere => "Open files here", "在此打开文件";
    OpenFilesHereTitle => "Browse, upload and download files on this host", "浏览、上传和下载此主机上的文件";
    FilesFolder => "Folder", "文件夹";
    FilesUp => "Up", "上一级";
    FilesName => "Name", "名称";
    FilesSize => "Size", "大小";
    FilesModified => "Modified", "修改时间";
    FilesOwner => "Owner", "所有者";
    FilesMode => "Permissions", "权限";
    FilesActions => "Actions", "操作";
    FilesLoading => "Loading the folder…", "正在加载文件夹…";
    FilesEmpty => "This folder is empty.", "此文件夹为空。";
    FilesLoadMore => "Load more", "加载更多";
    FilesDownloadTar => "Download as .tar", "下载为 .tar";
    FilesUpload => "Upload files…", "上传文件…";
    FilesUploadFolder => "Upload a folder…", "上传文件夹…";
    FilesDropHere => "Drop files or folders here to upload them into this folder.", "将文件或文件夹拖放到此处即可上传到此文件夹。";
    FilesReadOnly => "Read only: you may list and download files here, not change them.", "只读：你可以在此列出和下载文件，但不能修改。";
    FilesOverwrite => "Replace files that exist", "覆盖已存在的文件";
    FilesNewFolder => "New folder name", "新文件夹名称";
    FilesCreateFolder => "Create folder", "新建文件夹";
    FilesRename => "Rename", "重命名";
    FilesRenamePrompt => "New name:", "新名称：";
    FilesDelete => "Delete", "删除";
    FilesTransfers => "Transfers", "传输";
    FilesCancel => "Cancel", "取消";
    TransferQueued => "queued", "排队中";
    TransferDone => "done", "已完成";
    TransferCancelled => "cancelled", "已取消";
    TransferInterrupted => "The transfer was interrupted (the connection to the relay failed).", "传输中断（与中继的连接失败）。";
    FilesBadName => "A name may not be empty, \".\" or \"..\", nor contain \"/\".", "名称不能为空、不能是“.”或“..”，也不能包含“/”。";
}

/// A string with values in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg<'a> {
    /// The `n`-th attempt to reconnect.
    Reconnecting(u32),
    /// `Connection lost (reason); reconnecting in N s`.
    ReconnectingIn {
        reason: &'a str,
        secs: u32,
    },
    /// `Closed: summary — reason`.
    Closed {
        summary: &'a str,
        reason: &'a str,
    },
    CouldNotLogIn(&'a str),
    CouldNotLoadTargets(&'a str),
    PodsIn(&'a str),
    ExitStatus(i32),
    ExitSignal(&'a str),
    Watcher {
        user: &'a str,
        joined: bool,
        watchers: u32,
    },
    LinesReceived(u64),
    NewWhilePaused(usize),
    LogError(&'a str),
    LinesSkipped(u64),
    StreamEndedStatus(i32),
    NewBelow(usize),
    HereNow(usize),
    Joined(&'a str),
    Left(&'a str),
    /// `n` bytes, entries or lines of output could not be replayed.
    Lost {
        count: u64,
        unit: Unit,
    },
    FellBehind(u64),
    /// The relay answered an HTTP call with an error.
    RelaySaid {
        status: u16,
        message: &'a str,
    },
    RelayUnreachable(&'a str),
    RelayBadAnswer(&'a str),
    PleaseLogIn,
    /// A font size in pixels.
    FontSizeValue(u16),
    /// The relay refused a files call: its status in words, and the relay's reason.
    FilesRefused {
        status: u16,
        detail: &'a str,
    },
    /// Asks before deleting `name`.
    FilesDeleteConfirm(&'a str),
    /// A dropped folder could not be read: the browser's words.
    FilesFolderUnreadable(&'a str),
    /// A folder of an upload could not be made (its files are not sent): the refusal.
    FilesFolderNotMade {
        folder: &'a str,
        why: &'a str,
    },
    /// An upload under way: bytes sent of the total, rate and time left (text made by the
    /// caller: sizes and durations).
    TransferProgress {
        sent: &'a str,
        total: &'a str,
        rate: &'a str,
        left: &'a str,
    },
}

/// What a stream counts its position in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Entries,
    Lines,
}

impl Msg<'_> {
    pub fn text(&self, lang: Lang) -> String {
        match lang {
            Lang::En => self.en(),
            Lang::Zh => self.zh(),
        }
    }

    fn en(&self) -> String {
        match *self {
            Self::Reconnecting(n) => format!("Reconnecting… (attempt {n})"),
            Self::ReconnectingIn { reason, secs } => {
                if reason.is_empty() {
                    format!("Connection lost; reconnecting in {secs} s")
                } else {
                    format!("Connection lost ({reason}); reconnecting in {secs} s")
                }
            }
            Self::Closed { summary, reason } => {
                if reason.is_empty() || reason == summary {
                    format!("Closed: {summary}")
                } else {
                    format!("Closed: {summary} — {reason}")
                }
            }
            Self::CouldNotLogIn(e) => format!("Could not log in: {e}."),
            Self::CouldNotLoadTargets(e) => format!("Could not load targets: {e}"),
            Self::PodsIn(ns) => format!("Pods in {ns}"),
            Self::ExitStatus(code) => format!("The program exited with status {code}."),
            Self::ExitSignal(signal) => format!("The program was ended by signal {signal}."),
            Self::Watcher {
                user,
                joined,
                watchers,
            } => format!(
                "{user} {} watching this session ({watchers} watching now)",
                if joined { "started" } else { "stopped" }
            ),
            Self::LinesReceived(n) => format!("{n} lines received"),
            Self::NewWhilePaused(n) => format!(" · {n} new while paused"),
            Self::LogError(m) => format!("error: {m}"),
            Self::LinesSkipped(n) => format!("{n} lines were skipped to catch up"),
            Self::StreamEndedStatus(code) => format!("the stream ended (status {code})"),
            Self::NewBelow(n) => format!("{n} new ↓"),
            Self::HereNow(n) => format!("Here now ({n})"),
            Self::Joined(user) => format!("{user} joined"),
            Self::Left(user) => format!("{user} left"),
            Self::Lost { count, unit } => {
                let unit = match unit {
                    Unit::Bytes => "bytes",
                    Unit::Entries => "entries",
                    Unit::Lines => "lines",
                };
                format!("{count} {unit} of output could not be replayed.")
            }
            Self::FellBehind(n) => format!("Fell behind: {n} lines were skipped to catch up."),
            Self::RelaySaid { status, message } => format!("the relay said {status}: {message}"),
            Self::RelayUnreachable(e) => format!("could not reach the relay ({e})"),
            Self::RelayBadAnswer(e) => format!("unexpected answer from the relay ({e})"),
            Self::PleaseLogIn => "please log in".to_owned(),
            Self::FontSizeValue(px) => format!("{px} px"),
            Self::FilesRefused { status, detail } => {
                let summary = match status {
                    400 => "The path was refused",
                    401 => "Please log in again",
                    403 => "Permission denied",
                    404 => "Not found",
                    409 => "It exists already (or the folder is not empty)",
                    413 => "Too large: over the relay's upload limit",
                    422 => "Not possible for a folder",
                    429 => "Too many of your transfers at once; wait for one to finish",
                    503 => "The relay is busy with other transfers; try again soon",
                    507 => "No space left on the host",
                    502 => "The host refused",
                    _ => "Failed",
                };
                with_detail(format!("{summary} ({status})"), detail)
            }
            Self::FilesDeleteConfirm(name) => format!("Delete {name}? This cannot be undone."),
            Self::FilesFolderUnreadable(e) => {
                format!("The dropped folder could not be read ({e}).")
            }
            Self::FilesFolderNotMade { folder, why } => {
                format!("The folder {folder} could not be made, so its files were not sent: {why}")
            }
            Self::TransferProgress {
                sent,
                total,
                rate,
                left,
            } => format!("{sent} of {total} · {rate}/s · {left} left"),
        }
    }

    fn zh(&self) -> String {
        match *self {
            Self::Reconnecting(n) => format!("正在重连…（第 {n} 次）"),
            Self::ReconnectingIn { reason, secs } => {
                if reason.is_empty() {
                    format!("连接已断开；{secs} 秒后重连")
                } else {
                    format!("连接已断开（{reason}）；{secs} 秒后重连")
                }
            }
            Self::Closed { summary, reason } => {
                if reason.is_empty() || reason == summary {
                    format!("已关闭：{summary}")
                } else {
                    format!("已关闭：{summary} — {reason}")
                }
            }
            Self::CouldNotLogIn(e) => format!("无法登录：{e}。"),
            Self::CouldNotLoadTargets(e) => format!("无法加载目标：{e}"),
            Self::PodsIn(ns) => format!("{ns} 中的 Pod"),
            Self::ExitStatus(code) => format!("程序已退出，状态码 {code}。"),
            Self::ExitSignal(signal) => format!("程序被信号 {signal} 终止。"),
            Self::Watcher {
                user,
                joined,
                watchers,
            } => format!(
                "{user} {}查看此会话（当前 {watchers} 人在查看）",
                if joined { "开始" } else { "停止" }
            ),
            Self::LinesReceived(n) => format!("已接收 {n} 行"),
            Self::NewWhilePaused(n) => format!(" · 暂停期间新增 {n} 行"),
            Self::LogError(m) => format!("错误：{m}"),
            Self::LinesSkipped(n) => format!("为跟上进度跳过了 {n} 行"),
            Self::StreamEndedStatus(code) => format!("数据流已结束（状态码 {code}）"),
            Self::NewBelow(n) => format!("{n} 条新消息 ↓"),
            Self::HereNow(n) => format!("在线（{n}）"),
            Self::Joined(user) => format!("{user} 加入了"),
            Self::Left(user) => format!("{user} 离开了"),
            Self::Lost { count, unit } => {
                let unit = match unit {
                    Unit::Bytes => "字节",
                    Unit::Entries => "条",
                    Unit::Lines => "行",
                };
                format!("有 {count} {unit}输出无法重放。")
            }
            Self::FellBehind(n) => format!("处理不及：为跟上进度跳过了 {n} 行。"),
            Self::RelaySaid { status, message } => format!("中继返回 {status}：{message}"),
            Self::RelayUnreachable(e) => format!("无法连接中继（{e}）"),
            Self::RelayBadAnswer(e) => format!("中继的应答无法识别（{e}）"),
            Self::PleaseLogIn => "请登录".to_owned(),
            Self::FontSizeValue(px) => format!("{px} 像素"),
            Self::FilesRefused { status, detail } => {
                let summary = match status {
                    400 => "路径被拒绝",
                    401 => "请重新登录",
                    403 => "没有权限",
                    404 => "未找到",
                    409 => "已存在（或文件夹不为空）",
                    413 => "文件过大：超过中继的上传上限",
                    422 => "不能对文件夹执行此操作",
                    429 => "你同时进行的传输过多，请等待其中一个完成",
                    503 => "中继正忙于其他传输，请稍后再试",
                    507 => "主机上没有剩余空间",
                    502 => "主机拒绝了操作",
                    _ => "失败",
                };
                with_detail(format!("{summary}（{status}）"), detail)
            }
            Self::FilesDeleteConfirm(name) => format!("删除 {name}？此操作无法撤销。"),
            Self::FilesFolderUnreadable(e) => format!("无法读取拖入的文件夹（{e}）。"),
            Self::FilesFolderNotMade { folder, why } => {
                format!("无法创建文件夹 {folder}，其中的文件未发送：{why}")
            }
            Self::TransferProgress {
                sent,
                total,
                rate,
                left,
            } => format!("{sent} / {total} · {rate}/秒 · 剩余 {left}"),
        }
    }
}

/// A summary and the relay's own words (kept as sent), when there are any.
fn with_detail(summary: String, detail: &str) -> String {
    if detail.is_empty() {
        summary
    } else {
        format!("{summary}: {detail}")
    }
}

/// What a close code means, in `lang` (the relay's reason is shown beside it, as sent).
pub fn close_summary(code: u16, lang: Lang) -> String {
    let Some(known) = CloseCode::from_code(code) else {
        let (en, zh) = match code {
            standard::ABNORMAL => ("the connection dropped", "连接中断"),
            standard::NO_STATUS => ("the relay closed the connection", "中继关闭了连接"),
            standard::SERVICE_RESTART => ("the relay is restarting", "中继正在重启"),
            standard::TRY_AGAIN_LATER => ("the relay is busy", "中继繁忙"),
            standard::BAD_GATEWAY => ("the relay could not be reached", "无法连接中继"),
            other => {
                return match lang {
                    Lang::En => format!("closed with code {other}"),
                    Lang::Zh => format!("连接关闭，代码 {other}"),
                };
            }
        };
        return match lang {
            Lang::En => en,
            Lang::Zh => zh,
        }
        .to_owned();
    };
    let text = match lang {
        Lang::En => match known {
            CloseCode::Normal => "the session ended",
            CloseCode::GoingAway => "the relay is restarting",
            CloseCode::MessageTooBig => "a message was too large",
            CloseCode::InternalError => "the relay hit an internal error",
            CloseCode::BadRequest => "the request was not understood",
            CloseCode::Unauthenticated => "please log in",
            CloseCode::Forbidden => "not permitted: you may not open this",
            CloseCode::NotFound => "no such target",
            CloseCode::IdleTimeout => "the connection went quiet and was dropped",
            CloseCode::Replaced => "this session was opened elsewhere",
            CloseCode::SessionExpired => "the session expired; a new one is needed",
            CloseCode::TokenExpired => "your login expired",
            CloseCode::PermissionRevoked => "your permission was withdrawn",
            CloseCode::TokenRevoked => "you were logged out",
            CloseCode::BackendUnavailable => "the backend could not be reached",
            CloseCode::BackendRefused => {
                "the backend refused; retrying will not help until it is fixed"
            }
        },
        Lang::Zh => match known {
            CloseCode::Normal => "会话已结束",
            CloseCode::GoingAway => "中继正在重启",
            CloseCode::MessageTooBig => "消息过大",
            CloseCode::InternalError => "中继发生内部错误",
            CloseCode::BadRequest => "无法理解该请求",
            CloseCode::Unauthenticated => "请登录",
            CloseCode::Forbidden => "无权限：你不能打开此目标",
            CloseCode::NotFound => "没有这个目标",
            CloseCode::IdleTimeout => "连接长时间无响应，已断开",
            CloseCode::Replaced => "此会话已在别处打开",
            CloseCode::SessionExpired => "会话已过期，需要新会话",
            CloseCode::TokenExpired => "登录已过期",
            CloseCode::PermissionRevoked => "你的权限已被撤销",
            CloseCode::TokenRevoked => "你已退出登录",
            CloseCode::BackendUnavailable => "无法连接后端",
            CloseCode::BackendRefused => "后端拒绝了连接；问题修复前重试无效",
        },
    };
    text.to_owned()
}

/// What the login page says about a refused single sign-on, in `lang`.
pub fn sso_refusal(refusal: SsoRefusal, lang: Lang) -> &'static str {
    match lang {
        Lang::En => refusal.message(),
        Lang::Zh => match refusal {
            SsoRefusal::NotAllowed => {
                "你已登录身份提供方，但你的账号无权使用此控制台。请联系管理员将你加入允许的用户组。"
            }
            SsoRefusal::ProviderUnreachable => "无法连接身份提供方，请稍后再试。",
            SsoRefusal::ProviderRefused => "身份提供方未让你登录。",
            SsoRefusal::StateMismatch => "登录应答与本浏览器发起的登录不符。请从此页面重新开始。",
            SsoRefusal::LoginExpired => "登录耗时过长或在别处发起。请从此页面重新开始。",
            SsoRefusal::TokenInvalid => "无法验证身份提供方的应答。请从此页面重新开始。",
            SsoRefusal::ClaimsMissing => "身份提供方未提供你的身份（缺少配置的用户名声明）。",
            SsoRefusal::UnknownProvider => "未配置该身份提供方。",
            SsoRefusal::BadCallback => "登录应答格式错误。",
            SsoRefusal::Internal => "控制台无法完成登录，请重试。",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_browser_language_picks_the_first_the_app_has() {
        assert_eq!(Lang::pick(&["zh-CN", "en-US"]), Lang::Zh);
        assert_eq!(Lang::pick(&["de-DE", "ZH-hans", "en"]), Lang::Zh);
        assert_eq!(Lang::pick(&["en-GB", "zh-CN"]), Lang::En);
        assert_eq!(Lang::pick(&["fr", "de"]), Lang::En);
        assert_eq!(Lang::pick::<&str>(&[]), Lang::En);
        assert_eq!(Lang::from_tag("zh_TW"), Some(Lang::Zh));
        assert_eq!(Lang::from_tag(""), None);
        for lang in Lang::ALL {
            assert_eq!(Lang::from_tag(lang.tag()), Some(lang));
        }
    }

    #[test]
    fn every_key_has_a_chinese_text_that_differs_from_the_english() {
        for key in Text::ALL {
            let (en, zh) = (key.get(Lang::En), key.get(Lang::Zh));
            assert!(!en.is_empty() && !zh.is_empty(), "{key:?}");
            assert_ne!(en, zh, "{key:?} is not translated");
            assert!(
                zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{key:?}: {zh}"
            );
        }
    }

    #[test]
    fn every_close_code_has_a_message_in_each_language() {
        let mut codes: Vec<u16> = CloseCode::ALL.iter().map(|c| c.code()).collect();
        codes.extend([1005, 1006, 1012, 1013, 1014, 3999]);
        for code in codes {
            let (en, zh) = (close_summary(code, Lang::En), close_summary(code, Lang::Zh));
            assert_ne!(en, zh, "{code}");
        }
        assert_eq!(close_summary(1000, Lang::En), "the session ended");
        assert_eq!(close_summary(4403, Lang::Zh), "无权限：你不能打开此目标");
        assert_eq!(close_summary(3999, Lang::En), "closed with code 3999");
    }

    #[test]
    fn messages_carry_their_values_in_both_languages() {
        let msg = Msg::Closed {
            summary: "x",
            reason: "Connection refused",
        };
        assert_eq!(msg.text(Lang::En), "Closed: x — Connection refused");
        assert!(msg.text(Lang::Zh).contains("Connection refused"));
        assert_eq!(Msg::ExitStatus(3).text(Lang::Zh), "程序已退出，状态码 3。");
        assert_eq!(
            Msg::Lost {
                count: 5,
                unit: Unit::Bytes
            }
            .text(Lang::En),
            "5 bytes of output could not be replayed."
        );
    }
}
