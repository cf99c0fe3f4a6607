// The sample app (source only: NOT BUILT HERE, since Gradle, the Android Gradle Plugin and
// AndroidX come from Maven Central, which this project's machines cannot reach).
// Put the .so files built with cargo-ndk under src/main/jniLibs/<abi>/ (see ../README.md),
// or in the library module's jniLibs.
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.rwkv7.sample"
    compileSdk = 35
    defaultConfig {
        applicationId = "org.rwkv7.sample"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk { abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64") }
    }
    buildTypes {
        release {
            isMinifyEnabled = true
            // The library module ships consumer-rules.pro; with copied sources, add its lines here.
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin { jvmToolchain(17) }

dependencies {
    implementation(project(":rwkv7")) // targets/android/jvm (see its build.gradle.kts)
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
}
