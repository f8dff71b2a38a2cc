namespace DreamBooth.Loading;

/// <summary>
/// A model, config or tensor file could not be used. The message always names the file and what is wrong
/// (and where possible the fix); nothing is half-loaded when this is thrown.
/// </summary>
public sealed class ModelLoadException : Exception
{
    public ModelLoadException(string path, string problem, Exception? inner = null)
        : base($"{path}: {problem}", inner)
    {
        FilePath = path;
        Problem = problem;
    }

    /// <summary>The file or folder that could not be used.</summary>
    public string FilePath { get; }

    /// <summary>What is wrong with it, without the path.</summary>
    public string Problem { get; }
}
