// An Android library module for the Java/Kotlin API, for apps built with Gradle.
// NOT BUILT HERE: Maven Central (and so Gradle, the Android Gradle Plugin and AndroidX) is not
// reachable from this project's machines; the sources are compiled and tested on the host JVM
// by targets/android/test-host.sh instead. Versions below are examples.
//
// In the app's settings.gradle.kts:
//     include(":rwkv7")
//     project(":rwkv7").projectDir = file("path/to/targets/android/jvm")
// and in the app's build.gradle.kts: dependencies { implementation(project(":rwkv7")) }
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.rwkv7"
    compileSdk = 35
    defaultConfig {
        minSdk = 24
        // Ships the keep rules for the JNI names to every app that uses this module.
        consumerProguardFiles("consumer-rules.pro")
    }
    sourceSets["main"].java.srcDirs("src/main/java", "src/main/kotlin")
    // librwkv7_android.so per ABI, built with cargo-ndk (see ../README.md):
    //   src/main/jniLibs/arm64-v8a/librwkv7_android.so, .../armeabi-v7a/..., .../x86_64/...
    sourceSets["main"].jniLibs.srcDirs("src/main/jniLibs")
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin { jvmToolchain(17) }

dependencies {
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
}
