using DreamBooth.Loading.Hub;
using DreamBooth.Tests.Infrastructure;

namespace DreamBooth.Tests.Loading.Hub;

/// <summary>Options validation, environment defaults and token resolution.</summary>
public sealed class HubOptionsTests
{
    static Func<string, string?> Env(params (string Key, string Value)[] vars)
    {
        var d = vars.ToDictionary(v => v.Key, v => v.Value);
        return k => d.TryGetValue(k, out var v) ? v : null;
    }

    [Fact]
    public void TokenComesFromArgumentThenHfTokenThenTokenFile()
    {
        using var home = TestPaths.NewTempDir();
        File.WriteAllText(home.File("token"), "hf_fromfile\n");
        Assert.Equal("hf_arg", HubToken.Resolve("hf_arg", Env(("HF_TOKEN", "hf_env"), ("HF_HOME", home.Path))));
        Assert.Equal("hf_env", HubToken.Resolve(null, Env(("HF_TOKEN", "hf_env"), ("HF_HOME", home.Path))));
        Assert.Equal("hf_fromfile", HubToken.Resolve(null, Env(("HF_HOME", home.Path))));
        Assert.Null(HubToken.Resolve(null, Env(("HF_HOME", Path.Combine(home.Path, "none")))));
        File.WriteAllText(home.File("other"), "hf_custom");
        Assert.Equal("hf_custom", HubToken.Resolve(null, Env(("HF_HOME", home.Path), ("HF_TOKEN_PATH", home.File("other")))));
    }

    [Fact]
    public void CacheDirAndOfflineFollowHuggingFaceEnvironment()
    {
        Assert.Equal("/x/hub-cache", HubEnvironment.CacheDir(Env(("HF_HUB_CACHE", "/x/hub-cache"), ("HF_HOME", "/y"))));
        Assert.Equal(Path.Combine("/y", "hub"), HubEnvironment.CacheDir(Env(("HF_HOME", "/y"))));
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        Assert.Equal(Path.Combine(home, ".cache", "huggingface", "hub"), HubEnvironment.CacheDir(Env()));
        Assert.True(HubEnvironment.Offline(Env(("HF_HUB_OFFLINE", "1"))));
        Assert.True(HubEnvironment.Offline(Env(("HF_HUB_OFFLINE", "true"))));
        Assert.False(HubEnvironment.Offline(Env(("HF_HUB_OFFLINE", "0"))));
        Assert.False(HubEnvironment.Offline(Env()));
        Assert.Equal("https://huggingface.co", HubEnvironment.Endpoint(Env()));
        Assert.Equal("http://127.0.0.1:1", HubEnvironment.Endpoint(Env(("HF_ENDPOINT", "http://127.0.0.1:1/"))));
    }

    [Fact]
    public void ToStringHidesTheToken()
    {
        var o = new HubOptions { Token = "hf_supersecret", CacheDir = "/c" };
        var s = o.ToString();
        Assert.DoesNotContain("hf_supersecret", s);
        Assert.Contains("Token = ***", s);
        Assert.Contains("CacheDir = /c", s);
    }

    [Fact]
    public void ValidateNamesTheBadOption()
    {
        Assert.Contains("Endpoint", Assert.Throws<ArgumentException>(() => new HubOptions { Endpoint = "ftp://x" }.Validate()).Message);
        Assert.Contains("Timeout", Assert.Throws<ArgumentException>(() => new HubOptions { Timeout = TimeSpan.Zero }.Validate()).Message);
        Assert.Contains("MaxRetries", Assert.Throws<ArgumentException>(() => new HubOptions { MaxRetries = -1 }.Validate()).Message);
        var tok = Assert.Throws<ArgumentException>(() => new HubOptions { Token = "hf_a b" }.Validate());
        Assert.Contains("Token", tok.Message);
        Assert.DoesNotContain("hf_a b", tok.Message);
        new HubOptions { Endpoint = "http://127.0.0.1:8080", CacheDir = "/tmp/x" }.Validate();
    }

    [Fact]
    public async Task BadRepoFileOrRevisionIsRefusedBeforeAnyRequest()
    {
        using var cache = TestPaths.NewTempDir();
        using var client = new HubClient(new HubOptions { Endpoint = "http://127.0.0.1:9", CacheDir = cache.Path, Offline = true });
        await Assert.ThrowsAsync<ArgumentException>(() => client.DownloadFileAsync("../etc", "x"));
        await Assert.ThrowsAsync<ArgumentException>(() => client.DownloadFileAsync("org/model", "../../secret"));
        await Assert.ThrowsAsync<ArgumentException>(() => client.DownloadFileAsync("org/model", "/abs"));
        await Assert.ThrowsAsync<ArgumentException>(() => client.DownloadFileAsync("org/model", "config.json", "a/../../b"));
    }
}
