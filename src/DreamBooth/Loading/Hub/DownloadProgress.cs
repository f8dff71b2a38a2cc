namespace DreamBooth.Loading.Hub;

/// <summary>Progress of one file download: bytes so far (including bytes resumed from an earlier attempt), the total when
/// known, and the average speed of this download so far.</summary>
public sealed record DownloadProgress(string File, long BytesDone, long? TotalBytes, double BytesPerSecond);
