namespace DreamBooth.Loading.Hub;

/// <summary>What went wrong talking to the hub or its cache.</summary>
public enum HubErrorKind
{
    /// <summary>401/403: the repository is gated or private and no (or a refused) token was sent.</summary>
    Unauthorized,
    /// <summary>404: the repository does not exist (or is private and hidden).</summary>
    RepositoryNotFound,
    /// <summary>404: the revision (branch, tag or commit) does not exist.</summary>
    RevisionNotFound,
    /// <summary>404: the file does not exist at that revision.</summary>
    FileNotFound,
    /// <summary>Offline mode (or no network) and the file or snapshot is not in the cache.</summary>
    OfflineNotCached,
    /// <summary>The downloaded bytes have the wrong size.</summary>
    SizeMismatch,
    /// <summary>The downloaded bytes do not match the sha256 the hub announced.</summary>
    ChecksumMismatch,
    /// <summary>The network failed, even after the allowed retries.</summary>
    Network,
    /// <summary>The server answered something this client cannot use.</summary>
    BadResponse,
    /// <summary>The downloaded repository is not a usable diffusers pipeline.</summary>
    IncompletePipeline,
}

/// <summary>
/// A hub download failed. The message names the repository, file and revision, what is wrong and the fix.
/// It never contains the access token.
/// </summary>
public sealed class HubException : Exception
{
    /// <summary>Creates the exception; callers must not pass text that contains the token.</summary>
    public HubException(HubErrorKind kind, string repoId, string? filename, string? revision, string message, Exception? inner = null)
        : base(message, inner)
    {
        Kind = kind;
        RepoId = repoId;
        Filename = filename;
        Revision = revision;
    }

    /// <summary>The category of failure.</summary>
    public HubErrorKind Kind { get; }

    /// <summary>The repository, e.g. <c>runwayml/stable-diffusion-v1-5</c>.</summary>
    public string RepoId { get; }

    /// <summary>The file inside the repository, when one was involved.</summary>
    public string? Filename { get; }

    /// <summary>The branch, tag or commit asked for.</summary>
    public string? Revision { get; }

    /// <summary>The HTTP status code, when the failure was an HTTP answer.</summary>
    public int? StatusCode { get; init; }
}
